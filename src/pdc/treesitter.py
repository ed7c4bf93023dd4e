"""Shared, cached access to the tree-sitter grammars pdc is pinned to.

    from pdc.treesitter import parse, has_errors
    tree = parse("def f(x):\\n    return x\\n", "python")
    has_errors(tree)   # False

Languages are named as in CodeSearchNet (`python`, `ruby`, `javascript`,
`go`, `java`, `php`). Parsers are built once per language and reused.
Grammar packages are imported only when a language is first asked for, so
importing this module is cheap.
"""

from __future__ import annotations

import importlib
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version

from pdc.errors import PdcError

# language -> (module, function returning the grammar's language pointer)
_GRAMMARS: dict[str, tuple[str, str]] = {
    "python": ("tree_sitter_python", "language"),
    "ruby": ("tree_sitter_ruby", "language"),
    "javascript": ("tree_sitter_javascript", "language"),
    "go": ("tree_sitter_go", "language"),
    "java": ("tree_sitter_java", "language"),
    "php": ("tree_sitter_php", "language_php"),  # PHP with its `<?php` tag
}

SUPPORTED_LANGS: tuple[str, ...] = tuple(_GRAMMARS)


def check_lang(lang: str) -> str:
    """`lang` itself if a grammar is available, else a PdcError naming the ones that are."""
    if lang not in _GRAMMARS:
        raise PdcError(
            f"unsupported language '{lang}', choose one of: {', '.join(SUPPORTED_LANGS)}"
        )
    return lang


@lru_cache(maxsize=None)
def get_language(lang: str):
    """The tree_sitter.Language for `lang` (cached)."""
    from tree_sitter import Language

    module_name, func_name = _GRAMMARS[check_lang(lang)]
    module = importlib.import_module(module_name)
    return Language(getattr(module, func_name)())


@lru_cache(maxsize=None)
def get_parser(lang: str):
    """A tree_sitter.Parser for `lang` (cached; parsers are not thread-safe)."""
    from tree_sitter import Parser

    return Parser(get_language(lang))


def parse(code: str, lang: str):
    """Parse `code` and return the tree-sitter Tree."""
    return get_parser(lang).parse(code.encode("utf-8", errors="surrogatepass"))


def has_errors(tree) -> bool:
    """Whether the tree holds any ERROR or MISSING node."""
    return tree.root_node.has_error


def parses(code: str, lang: str) -> bool:
    """Whether `code` parses cleanly (no ERROR or MISSING node) as `lang`."""
    return not has_errors(parse(code, lang))


def error_bytes(node) -> int:
    """How many bytes of `node` lie inside ERROR nodes (MISSING nodes count 1 each)."""
    total, stack = 0, [node]
    while stack:  # iterative: deeply nested code must not hit the recursion limit
        current = stack.pop()
        if current.type == "ERROR":
            total += max(1, current.end_byte - current.start_byte)
        elif current.is_missing:
            total += 1
        elif current.has_error:
            stack.extend(current.children)
    return total


def grammar_package(lang: str) -> str:
    """The PyPI name of the grammar package, e.g. 'tree-sitter-python'."""
    return _GRAMMARS[check_lang(lang)][0].replace("_", "-")


@lru_cache(maxsize=None)
def grammar_version(lang: str) -> str:
    """The installed version of the grammar package for `lang`, e.g. '0.21.0'."""
    try:
        return version(grammar_package(lang))
    except PackageNotFoundError:
        return "unknown"
