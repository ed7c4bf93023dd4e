"""The offline `ast` teacher: rule-based pseudocode from a tree-sitter parse.

    from pdc.teachers.ast_teacher import pseudocode
    pseudocode(code, "python")
    # ['Define a function `flatten` that takes `items`.',
    #  'Initialize `result` to an empty list.',
    #  'Iterate over each `item` in `items`:',
    #  'If `item` is an instance of `list`, extend `result` with `flatten(item)` (recursive call).',
    #  'Otherwise, append `item` to `result`.',
    #  'After the loop, return `result`.']

It needs no model and no network: it reads the record's reference code and
describes it, statement by statement, in the style of the paper's exemplar
(Section 4.7.4). The rules:

* The first function in the code (in source order) is described; a step
  "Define a function/method `name` that takes `a`, `b` and `c`." opens.
* Each statement of its body becomes one step: assignments ("Set `x` to
  ...", "Initialize `x` to an empty list", "Add `1` to `n`"), calls
  ("Call `f` with `a, b`", "Append `y` to `xs`", "Print ...", "Recursively
  call ..."), returns, raise/throw, yield, break/continue, assertions.
* A compound statement (if/elif/else, for, while, try/except/finally, with,
  switch/case, a Ruby block, a JavaScript callback, a nested function) whose
  body is one or two simple statements is written inline: "If C, x." /
  "Otherwise, y." / "For each `x` in `xs`, z." A longer body gets a header
  step ending in ':' ("Iterate over each `x` in `xs`:") followed by the body's
  steps; the statement after such a block starts with "After the loop, ..."
  (or "After the if block, ...", "After the try block, ...") so the nesting
  survives without indentation.
* Conditions read as words where a rule knows the idiom (`x is None`,
  `isinstance`, `==`, `<`, `in`, `!`, `&&`, Ruby `nil?`/`is_a?`, PHP
  `isset`...); anything else is quoted as code. Code snippets longer than
  MAX_SNIPPET characters are cut with "...".
* Docstrings, comments and `pass` are skipped; an empty body gives "Do nothing.".
* Ruby's implicit return: the method's last expression (and the last one of
  each branch of a final if/case/begin) is written "Return `x`.".
* At most MAX_STEPS steps: a longer description keeps its first
  MAX_STEPS - 1 steps and ends with "Carry out the remaining N steps.".
  Blocks nested deeper than MAX_DEPTH are summarised ("..., run a nested
  block."); conditions longer than MAX_CONDITION are quoted, not worded.

Languages: python, ruby, javascript, go, java, php (the CodeSearchNet six).
Java, JavaScript and PHP methods lifted out of their class are parsed by
wrapping them in a dummy class; PHP code without `<?php` gets the tag.

Syntax errors: code whose best parse has more than MAX_ERROR_FRACTION of its
bytes inside ERROR nodes fails with kind "unparsable_code". Below that the
function is described and statements that sit in ERROR nodes are skipped.
Failure kinds: missing_code, unsupported_language, unparsable_code,
no_function, too_complex (none is retryable: the same code fails again).
The output is a pure function of (code, lang): no randomness, no clock.
"""

from __future__ import annotations

import re
import textwrap
from typing import Any

from pdc.teachers import TeacherFailure
from pdc.treesitter import SUPPORTED_LANGS, error_bytes, grammar_version, parse

MAX_STEPS = 24  # longest description; longer ones are cut (see _cap)
MAX_SNIPPET = 60  # longest quoted code snippet before "..."
MAX_INLINE = 100  # longest body written inline after "If C, "
MAX_INLINE_STEP = 170  # longest step made by writing a body inline
MAX_CONDITION = 90  # longest condition written as words; longer ones are quoted
MAX_DEPTH = 8  # deepest nesting described; deeper blocks are summarised
MAX_ERROR_FRACTION = 0.1  # share of bytes in ERROR nodes above which code is unparsable


def pseudocode(code: str, lang: str) -> list[str]:
    """Numbered-to-be pseudocode steps (plain strings, no numbers) for the first function in `code`.

    Raises TeacherFailure (kinds: missing_code, unsupported_language,
    unparsable_code, no_function, too_complex).
    """
    if not isinstance(code, str) or not code.strip():
        raise TeacherFailure("missing_code", "the record has no code to describe")
    if lang not in SUPPORTED_LANGS:
        raise TeacherFailure(
            "unsupported_language",
            f"no grammar for language '{lang}', supported: {', '.join(SUPPORTED_LANGS)}",
        )
    tree = _parse_best(code, lang)
    function = _first_function(tree.root_node, lang)
    if function is None:
        raise TeacherFailure("no_function", f"no function definition found in the {lang} code")
    try:
        return _cap(_Writer(lang, function).describe())
    except RecursionError:
        raise TeacherFailure("too_complex", "the function is nested too deeply to describe") from None


class AstTeacher:
    """Teacher protocol wrapper: annotates a problem's reference code offline."""

    name = "ast"
    prompt_id = "ast-v1"

    def __init__(self) -> None:
        self.model = "tree-sitter-rules"

    def model_for(self, lang: str) -> str:
        """What produced the pseudocode for `lang`, e.g. 'tree-sitter-python 0.21.0'."""
        return f"tree-sitter-{lang} {grammar_version(lang)}"

    def annotate(self, problem: dict[str, Any], where: str) -> dict[str, Any]:
        """{"pseudocode": steps, "teacher_code": the reference code} for one problem.

        Reads problem["code"] and problem["lang"] (a raw CodeSearchNet row's
        "language" is accepted too). Sets `self.model` for this record.
        `where` (the record's position) is not needed: failures name no place.
        """
        code = problem.get("code")
        lang = problem.get("lang") or problem.get("language")
        self.model = self.model_for(lang) if lang in SUPPORTED_LANGS else "tree-sitter-rules"
        if not lang:
            raise TeacherFailure("unsupported_language", "the record has no 'lang'")
        return {"pseudocode": pseudocode(code, lang), "teacher_code": code}


# --------------------------------------------------------------------------
# Parsing and finding the function

_FUNCTION_TYPES = {
    "python": {"function_definition"},
    "ruby": {"method", "singleton_method"},
    "javascript": {
        "function_declaration", "generator_function_declaration", "function_expression",
        "function", "generator_function", "arrow_function", "method_definition",
    },
    "go": {"function_declaration", "method_declaration", "func_literal"},
    "java": {"method_declaration", "constructor_declaration"},
    "php": {"function_definition", "method_declaration"},
}

_WRAPPER = "PdcWrapper"


def _candidates(code: str, lang: str) -> list[str]:
    """Ways to present `code` to the parser, best first (methods out of their class...)."""
    if lang == "python":
        return [code, textwrap.dedent(code)]
    if lang in ("java", "javascript"):
        return [code, f"class {_WRAPPER} {{\n{code}\n}}"]
    if lang == "go":
        return [code, f"package main\n{code}"]
    if lang == "php":
        body = code.strip()
        if body.startswith("<?php"):
            body = body[len("<?php"):]
        return [f"<?php\n{body}", f"<?php\nclass {_WRAPPER} {{\n{body}\n}}"]
    return [code]


def _parse_best(code: str, lang: str):
    """The parse with the fewest error bytes; TeacherFailure if even that is mostly errors."""
    best, best_errors = None, None
    for candidate in _candidates(code, lang):
        tree = parse(candidate, lang)
        errors = error_bytes(tree.root_node)
        if best is None or errors < best_errors:
            best, best_errors = tree, errors
        if errors == 0:
            break
    share = best_errors / max(1, len(code.encode("utf-8", "surrogatepass")))
    if share > MAX_ERROR_FRACTION:
        raise TeacherFailure(
            "unparsable_code",
            f"the code does not parse as {lang} ({share:.0%} of it is inside syntax errors)",
        )
    return best


def _first_function(root, lang: str):
    """The first function node in source order (pre-order walk), or None."""
    wanted = _FUNCTION_TYPES[lang]
    stack = [root]
    while stack:
        node = stack.pop()
        if node.type in wanted:
            return node
        stack.extend(reversed(node.children))
    return None


def _cap(steps: list[str]) -> list[str]:
    """At most MAX_STEPS steps; the last one says how many were left out."""
    if len(steps) <= MAX_STEPS:
        return steps
    kept = steps[: MAX_STEPS - 1]
    return kept + [f"Carry out the remaining {len(steps) - len(kept)} steps."]


# --------------------------------------------------------------------------
# Text helpers


def _text(node) -> str:
    return node.text.decode("utf-8", "replace") if node is not None else ""


def _squash(text: str, limit: int = MAX_SNIPPET) -> str:
    """One line, at most `limit` characters (cut with '...')."""
    text = " ".join(text.replace("\\\n", " ").split())  # also joins `\` line continuations
    return text if len(text) <= limit else text[: limit - 3].rstrip() + "..."


def _code(node_or_text) -> str:
    """A node's (or a string's) source as a short quoted snippet: `x + 1`."""
    text = node_or_text if isinstance(node_or_text, str) else _text(node_or_text)
    return f"`{_squash(text)}`"


def _lower_first(step: str) -> str:
    """'Set `x`...' -> 'set `x`...' (to continue a sentence)."""
    if len(step) > 1 and step[0].isupper() and not step[1].isupper():
        return step[0].lower() + step[1:]
    return step


def _join(items: list[str]) -> str:
    """['a', 'b', 'c'] -> 'a, b and c'."""
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _is_header(step: str) -> bool:
    return step.endswith(":")


class _Steps(list):
    """Steps of a compound statement, with the name used in 'After the <label>, ...'."""

    def __init__(self, steps, label: str):
        super().__init__(steps)
        self.label = label


# --------------------------------------------------------------------------
# Node kinds shared by the grammars

_COMMENTS = {"comment", "line_comment", "block_comment"}
_STRINGS = {"string", "string_literal", "encapsed_string", "interpreted_string_literal",
            "raw_string_literal", "template_string"}
_BLOCKS = {"block", "statement_block", "compound_statement", "body_statement", "block_body",
           "then", "else", "do", "constructor_body"}
_CALLS = {"call", "call_expression", "method_invocation", "function_call_expression",
          "member_call_expression", "scoped_call_expression", "nullsafe_member_call_expression"}
_NEWS = {"new_expression", "object_creation_expression"}
_ASSIGNMENTS = {"assignment", "augmented_assignment", "assignment_expression",
                "augmented_assignment_expression", "operator_assignment", "assignment_statement",
                "short_var_declaration", "reference_assignment_expression"}
_UPDATES = {"update_expression", "inc_statement", "dec_statement"}
_FUNCTION_VALUES = {"function_expression", "function", "arrow_function", "generator_function",
                    "func_literal", "anonymous_function_creation_expression"}
_NULLS = {"None", "nil", "null", "NULL", "undefined"}
_TRUE = {"True", "true", "1"}
_SELF = {"self", "this", "$this", "static", "cls"}
_CONSTRUCTORS = {"__init__", "__construct", "initialize"}

_COMPARISONS = {
    "==": "equals", "===": "equals", "!=": "does not equal", "!==": "does not equal",
    "<>": "does not equal", "<": "is less than", "<=": "is at most", ">": "is greater than",
    ">=": "is at least", "in": "is in", "not in": "is not in", "is": "is", "is not": "is not",
    "instanceof": "is an instance of",
}
_NEGATED = {"equals": "does not equal", "does not equal": "equals", "is in": "is not in",
            "is not in": "is in", "is": "is not", "is not": "is", "is an instance of":
            "is not an instance of"}
_LOGICAL = {"and": "and", "&&": "and", "or": "or", "||": "or"}

_PRINTERS = {"print", "puts", "p", "pp", "printf", "print_r", "var_dump", "console.log",
             "console.error", "console.warn", "console.info", "System.out.println",
             "System.out.print", "System.out.printf", "System.err.println", "fmt.Println",
             "fmt.Printf", "fmt.Print", "sys.stdout.write", "sys.stderr.write"}
_LOG_LEVELS = {"debug", "info", "warning", "warn", "error", "critical", "exception", "fatal",
               "trace"}
# receiver.method(arg) idioms: method -> step template
_CONTAINER_METHODS = {
    "append": "Append {a} to {r}", "push": "Append {a} to {r}", "add": "Add {a} to {r}",
    "extend": "Extend {r} with {a}", "concat": "Extend {r} with {a}",
    "addAll": "Add all of {a} to {r}", "update": "Update {r} with {a}",
    "remove": "Remove {a} from {r}", "discard": "Remove {a} from {r}",
}
# receivers that are modules or the object itself, not containers (`os.remove(path)`)
_NOT_CONTAINERS = {"os", "os.path", "shutil", "sys", "self", "this", "$this", "super()", "super"}
# single-argument predicate calls: callee -> phrase after the argument
_PREDICATE_CALLS = {
    "Array.isArray": "is an array", "is_array": "is an array", "isset": "is set",
    "empty": "is empty", "is_null": "is null", "is_string": "is a string",
    "is_numeric": "is numeric", "is_int": "is an integer", "is_object": "is an object",
    "callable": "is callable", "is_callable": "is callable", "os.path.exists": "exists",
    "os.path.isdir": "is a directory", "os.path.isfile": "is a file",
}
# Ruby predicate methods without arguments: method -> phrase after the receiver
_RUBY_PREDICATES = {"nil?": "is nil", "empty?": "is empty", "blank?": "is blank",
                    "present?": "is present", "any?": "has any elements", "zero?": "is zero"}
_RUBY_TYPE_CHECKS = {"is_a?", "kind_of?", "instance_of?"}
_RUBY_NOT_VALUES = {"puts", "print", "p", "pp", "raise", "fail", "require", "require_relative",
                    "include", "extend", "attr_accessor", "attr_reader", "attr_writer"}
# Ruby methods whose block's last expression is the value that matters
_RUBY_BLOCK_VALUES = {"map", "collect", "flat_map", "select", "filter", "filter_map", "reject",
                      "find", "detect", "find_all", "sort_by", "min_by", "max_by", "group_by",
                      "partition", "any?", "all?", "none?", "count", "sum", "inject", "reduce",
                      "take_while", "drop_while", "index", "find_index", "uniq"}

# statement node type -> handler, for every grammar (types do not clash harmfully)
_STATEMENTS = {
    "expression_statement": "_expression", "return_statement": "_return", "return": "_return",
    "if_statement": "_if", "if": "_if", "unless": "_if",
    "if_modifier": "_modifier", "unless_modifier": "_modifier", "while_modifier": "_modifier",
    "until_modifier": "_modifier", "rescue_modifier": "_rescue_modifier",
    "for_statement": "_for", "for_in_statement": "_for_each", "for": "_for_each",
    "enhanced_for_statement": "_for_each", "foreach_statement": "_for_each",
    "while_statement": "_while", "while": "_while", "until": "_while", "do_statement": "_do_while",
    "try_statement": "_try", "try_with_resources_statement": "_try", "begin": "_try",
    "rescue": "_handler", "ensure": "_handler", "else": "_handler",
    "with_statement": "_with", "synchronized_statement": "_synchronized",
    "switch_statement": "_switch", "switch_expression": "_switch", "case": "_switch",
    "match_statement": "_switch", "expression_switch_statement": "_switch",
    "type_switch_statement": "_switch", "select_statement": "_switch",
    "raise_statement": "_raise", "throw_statement": "_raise",
    "break_statement": "_break", "break": "_break",
    "continue_statement": "_continue", "next": "_continue",
    "lexical_declaration": "_declaration", "variable_declaration": "_declaration",
    "local_variable_declaration": "_declaration", "var_declaration": "_declaration",
    "const_declaration": "_declaration", "function_static_declaration": "_declaration",
    "function_definition": "_nested_function", "decorated_definition": "_nested_function",
    "function_declaration": "_nested_function", "generator_function_declaration": "_nested_function",
    "method": "_nested_function", "singleton_method": "_nested_function",
    "class_definition": "_class", "class_declaration": "_class", "class": "_class",
    "module": "_class", "local_class_declaration": "_class",
    "labeled_statement": "_labeled", "compound_statement": "_inner_block",
    "block": "_inner_block",
    "assert_statement": "_assert", "delete_statement": "_simple", "global_statement": "_simple",
    "nonlocal_statement": "_simple", "import_statement": "_simple",
    "import_from_statement": "_simple", "future_import_statement": "_simple",
    "print_statement": "_simple", "exec_statement": "_simple", "echo_statement": "_simple",
    "unset_statement": "_simple", "global_declaration": "_simple", "exit_statement": "_simple",
    "defer_statement": "_simple", "go_statement": "_simple", "send_statement": "_simple",
    "goto_statement": "_simple", "fallthrough_statement": "_simple", "retry": "_simple",
    "redo": "_simple", "explicit_constructor_invocation": "_simple", "yield_statement": "_simple",
    "pass_statement": "_skip", "empty_statement": "_skip", "ERROR": "_skip",
    "comment": "_skip", "line_comment": "_skip", "block_comment": "_skip", ";": "_skip",
}
# handlers whose statements have bodies (never written inline inside another body)
_COMPOUND = {"_if", "_modifier", "_rescue_modifier", "_for", "_for_each", "_while", "_do_while",
             "_try", "_handler", "_with", "_synchronized", "_switch", "_nested_function",
             "_labeled", "_inner_block"}
# "verb {code}." for one-line statements: node type -> template
_SIMPLE_TEMPLATES = {
    "delete_statement": "Delete {args}",
    "global_statement": "Declare {args} as global", "nonlocal_statement": "Declare {args} as nonlocal",
    "import_statement": "Import {args}", "import_from_statement": "Import {all}",
    "future_import_statement": "Import {all}", "print_statement": "Print {args}",
    "exec_statement": "Execute {args}", "echo_statement": "Print {args}",
    "unset_statement": "Unset {args}", "global_declaration": "Declare {args} as global",
    "exit_statement": "Exit with {args}", "defer_statement": "Defer {args}",
    "go_statement": "Run {args} in a new goroutine", "send_statement": "Send on a channel: {all}",
    "goto_statement": "Go to {args}", "fallthrough_statement": "Fall through to the next case",
    "retry": "Retry the begin block", "redo": "Redo the current iteration",
    "explicit_constructor_invocation": "Call the constructor {all}", "yield_statement": "Yield {args}",
}


# --------------------------------------------------------------------------
# The writer: one instance per function described


class _Writer:
    """Turns one function node into steps (see the module docstring for the rules)."""

    def __init__(self, lang: str, function):
        self.lang = lang
        self.function = function
        self.name = self._function_name(function)
        self.depth = 0
        self.raise_verb = "Raise" if lang in ("python", "ruby") else "Throw"

    # ---- functions -------------------------------------------------------

    def describe(self) -> list[str]:
        """All steps for the function: signature, then its body."""
        steps = [self._signature(self.function) + "."]
        body = self.function.child_by_field_name("body")
        if self.function.type == "arrow_function" and body is not None and body.type not in _BLOCKS:
            return steps + [f"Return {_code(body)}{self._recursion_note(body)}."]
        steps += self._body(self._function_body(self.function), tail=self.lang == "ruby")
        if len(steps) == 1:
            steps.append("Do nothing.")
        return steps

    def _function_body(self, node) -> list:
        """The statements of a function body, without a Python docstring."""
        body = node.child_by_field_name("body")
        if body is None or body.type not in _BLOCKS:
            return []
        statements = self._statements(body)
        if self.lang == "python" and statements and self._is_string_statement(statements[0]):
            statements = statements[1:]  # the docstring
        return statements

    def _function_name(self, node) -> str | None:
        name = node.child_by_field_name("name")
        if name is not None:
            return _text(name)
        parent = node.parent
        if parent is not None and parent.type in ("variable_declarator", "pair"):
            key = parent.child_by_field_name("name") or parent.child_by_field_name("key")
            return _text(key) if key is not None else None
        if parent is not None and parent.type == "assignment_expression":
            return _text(parent.child_by_field_name("left"))
        if parent is not None and parent.type == "expression_statement" and parent.parent is not None \
                and parent.parent.type == "labeled_statement":  # JavaScript `name: function () {}`
            return _text(parent.parent.child_by_field_name("label"))
        return None

    def _signature(self, node, nested: bool = False, name: str | None = None) -> str:
        """'Define a method `name` that takes `a` and `b`' (no final punctuation)."""
        name = self._function_name(node) or name
        params = self._parameters(node)
        kind = self._function_kind(node, params)
        if kind in ("method", "class method", "constructor") and params[:1] in (["`self`"], ["`cls`"]):
            params = params[1:]
        if nested:
            kind = f"nested {kind}"
        article = "an" if kind[0] in "aeiou" else "a"
        head = f"Define {article} {kind} `{name}`" if name else f"Define an anonymous {kind}"
        receiver = node.child_by_field_name("receiver") if self.lang == "go" else None
        if receiver is not None:
            head += f" on {self._go_receiver(receiver)}"
        takes = _join(params) if params else "no arguments"
        return f"{head} that takes {takes}"

    def _function_kind(self, node, params: list[str]) -> str:
        text = _text(node)
        modifiers = " ".join(_text(c) for c in node.children
                             if c.type in ("modifiers", "static_modifier"))
        decorators = ""
        if node.parent is not None and node.parent.type == "decorated_definition":
            decorators = " ".join(_text(c) for c in node.parent.children if c.type == "decorator")
        if node.type == "constructor_declaration" or self._function_name(node) in _CONSTRUCTORS:
            return "constructor"
        if node.type == "singleton_method" or "@classmethod" in decorators or params[:1] == ["`cls`"]:
            return "class method"
        if "@staticmethod" in decorators or "static" in modifiers.split():
            return "static method"
        if "@property" in decorators:
            return "property"
        if node.type in ("method_declaration", "method_definition", "method") or (
            self.lang == "python" and params and params[0] == "`self`"
        ):
            kind = "method"
        else:
            kind = "function"
        if text.startswith("async"):
            kind = f"async {kind}"
        return kind

    def _go_receiver(self, receiver) -> str:
        declarations = [c for c in receiver.named_children if c.type == "parameter_declaration"]
        if declarations and declarations[0].child_by_field_name("type") is not None:
            return _code(declarations[0].child_by_field_name("type"))
        return _code(receiver)

    def _parameters(self, node) -> list[str]:
        """Each parameter as `name`, `*args` or `name` (default `v`)."""
        params = node.child_by_field_name("parameters") or node.child_by_field_name("parameter")
        if params is None:
            return []
        if params.type == "identifier":  # arrow function `x => ...`
            return [_code(params)]
        return [p for p in (self._parameter(c) for c in params.named_children) if p]

    def _parameter(self, node) -> str | None:
        if node.type in _COMMENTS or node.type in (
            "keyword_separator", "positional_separator", "receiver_parameter", "ERROR"):
            return None
        prefix = {"list_splat_pattern": "*", "splat_parameter": "*", "dictionary_splat_pattern": "**",
                  "hash_splat_parameter": "**", "block_parameter": "&", "rest_pattern": "...",
                  "spread_parameter": "...", "variadic_parameter_declaration": "...",
                  "variadic_parameter": "..."}.get(node.type, "")
        names = node.children_by_field_name("name") or node.children_by_field_name("left")
        if not names and node.type == "spread_parameter":
            names = [c.child_by_field_name("name") for c in node.named_children
                     if c.type == "variable_declarator"]
        if not names and node.type in ("typed_parameter", "list_splat_pattern",
                                        "dictionary_splat_pattern", "rest_pattern"):
            names = node.named_children[:1]
            if names and names[0].type in ("list_splat_pattern", "dictionary_splat_pattern"):
                return self._parameter(names[0])
        if not names:
            if node.type == "parameter_declaration":  # a Go type without a name
                return _code(node)
            names = [node]
        label = _code(prefix + ", ".join(_text(n).lstrip("*&.") if prefix else _text(n) for n in names))
        default = (node.child_by_field_name("value") or node.child_by_field_name("default_value")
                   or (node.child_by_field_name("right") if node.type == "assignment_pattern" else None))
        if default is not None and node.type not in ("parameter_declaration", "formal_parameter"):
            label += f" (default {_code(default)})"
        return label

    # ---- bodies ------------------------------------------------------------

    def _statements(self, node) -> list:
        """The statements inside a block-like node, or [node] for a lone statement."""
        if node is None:
            return []
        if node.type in _BLOCKS:
            return [c for c in node.named_children if c.type not in _COMMENTS]
        return [node]

    def _body(self, statements: list, tail: bool = False) -> list[str]:
        """Steps for a statement sequence."""
        return self._join_blocks(self._render(statements, tail))

    def _render(self, statements: list, tail: bool) -> list[tuple]:
        """[(statement, its steps)] for the statements that produce any step."""
        last = len(statements) - 1
        pairs = []
        for i, node in enumerate(statements):
            out = self._statement(node, tail=tail and i == last)
            if out:
                pairs.append((node, out))
        return pairs

    def _join_blocks(self, pairs: list[tuple]) -> list[str]:
        """Concatenate steps; the step after an expanded block starts 'After the <label>, '."""
        steps: list[str] = []
        after = None
        for _, out in pairs:
            label = getattr(out, "label", None)
            out = list(out)
            if after:
                out[0] = f"After the {after}, {_lower_first(out[0])}"
            steps += out
            after = label if label and any(_is_header(s) for s in out) else None
        return steps

    def _statement(self, node, tail: bool = False) -> list[str]:
        handler = _STATEMENTS.get(node.type)
        if handler is None:
            return self._expression_statement(node, tail)
        return getattr(self, handler)(node, tail)

    def _is_compound(self, node) -> bool:
        if node.type in ("expression_statement",):
            inner = self._named(node)
            return len(inner) == 1 and self._is_compound(inner[0])
        if node.type in _CALLS:
            return self._callback(node) is not None
        if node.type in ("lexical_declaration", "variable_declaration"):
            return any(c.child_by_field_name("value") is not None
                       and c.child_by_field_name("value").type in _FUNCTION_VALUES
                       for c in node.named_children)
        return _STATEMENTS.get(node.type) in _COMPOUND

    def _clause(self, head: str, statements: list, *, header: str | None = None,
                empty: str = "do nothing", sep: str = ", ", tail: bool = False) -> list[str]:
        """'head, step.' for a short body; else 'header:' then the body's steps."""
        if self.depth >= MAX_DEPTH:
            return [f"{head}{sep}run a nested block."]
        self.depth += 1
        pairs = self._render(statements, tail)
        self.depth -= 1
        steps = self._join_blocks(pairs)
        if not steps:
            return [f"{head}{sep}{empty}."]
        if self._inlinable(pairs, head):
            parts = [_lower_first(s[:-1]) for s in steps]
            return [f"{head}{sep}{' and '.join(parts)}."]
        return [f"{header or head}:"] + steps

    def _inlinable(self, pairs: list[tuple], head: str) -> bool:
        """At most two simple statements of one short step each."""
        if len(pairs) > 2:
            return False
        for node, out in pairs:
            if len(out) != 1 or _is_header(out[0]) or self._is_compound(node):
                return False
        body = sum(len(out[0]) for _, out in pairs)
        return body <= MAX_INLINE and len(head) + body <= MAX_INLINE_STEP

    def _named(self, node) -> list:
        return [c for c in node.named_children if c.type not in _COMMENTS] if node is not None else []

    # ---- simple statements ----------------------------------------------

    def _skip(self, node, tail=False) -> list[str]:
        return []

    def _expression(self, node, tail=False) -> list[str]:
        inner = self._named(node)
        if len(inner) == 1:
            return self._expression_statement(inner[0], tail)
        return [f"Evaluate {_code(node)}."] if inner else []

    def _expression_statement(self, node, tail=False) -> list[str]:
        """A statement that is an expression: assignment, call, yield, await..."""
        kind = node.type
        if kind in _ASSIGNMENTS:
            return self._assignment(node)
        if kind in _UPDATES:
            return [self._update(node)]
        if kind in _CALLS or kind in _NEWS:
            return self._call_statement(node, tail)
        if kind in ("yield", "yield_expression"):
            return [self._yield(node)]
        if kind in ("await", "await_expression"):
            return [f"Await {_code(self._named(node)[0] if self._named(node) else node)}."]
        if kind == "throw_expression":
            return self._raise(node)
        if kind in ("print_intrinsic",):
            return [f"Print {_code(self._named(node)[0])}."] if self._named(node) else []
        if self._is_string_statement(node) or kind in ("ellipsis", "ERROR"):
            return []
        if kind == "parenthesized_expression" and len(self._named(node)) == 1:
            return self._expression_statement(self._named(node)[0], tail)
        if kind == "binary" and _text(node.child_by_field_name("operator")) == "<<":
            return [f"Append {_code(node.child_by_field_name('right'))} to "
                    f"{_code(node.child_by_field_name('left'))}."]
        if tail and self.lang == "ruby":
            return [f"Return {_code(node)}{self._recursion_note(node)}."]
        if self.lang == "ruby" and kind in ("identifier", "constant"):
            return [f"Call {_code(node)}."]
        return [f"Evaluate {_code(node)}."]

    def _is_string_statement(self, node) -> bool:
        if node.type == "expression_statement":
            inner = self._named(node)
            return len(inner) == 1 and inner[0].type in _STRINGS | {"concatenated_string"}
        return node.type in _STRINGS and self.lang in ("python", "javascript")

    def _simple(self, node, tail=False) -> list[str]:
        """One-line statements from _SIMPLE_TEMPLATES."""
        keyword = node.children[0] if node.children else None
        rest = _text(node)
        if keyword is not None and not keyword.is_named:
            rest = rest[len(_text(keyword)):]
        rest = rest.strip().rstrip(";").strip()
        if rest.startswith("(") and rest.endswith(")"):
            rest = rest[1:-1]
        template = _SIMPLE_TEMPLATES[node.type]
        if "{args}" in template and not rest:
            template = template.split(" {args}")[0]
        return [template.format(args=_code(rest), all=_code(node)) + "."]

    def _assert(self, node, tail=False) -> list[str]:
        parts = self._named(node)
        message = f" (message {_code(parts[1])})" if len(parts) > 1 else ""
        return [f"Assert that {self._cond(parts[0])}{message}."] if parts else []

    def _return(self, node, tail=False) -> list[str]:
        values = self._named(node)
        if len(values) == 1 and values[0].type == "argument_list":  # Ruby
            values = self._named(values[0])
        if not values:
            return ["Return."]
        text = ", ".join(_text(v) for v in values)
        return [f"Return {_code(text)}{self._recursion_note(node)}."]

    def _break(self, node, tail=False) -> list[str]:
        return ["Stop the loop."]

    def _continue(self, node, tail=False) -> list[str]:
        return ["Skip to the next iteration."]

    def _yield(self, node) -> str:
        values = self._named(node)
        if len(values) == 1 and values[0].type == "argument_list":
            values = self._named(values[0])
        if not values:
            return "Yield control." if self.lang != "ruby" else "Yield to the block."
        text = ", ".join(_text(v) for v in values)
        if _text(node).startswith("yield from") or _text(node).startswith("yield*"):
            return f"Yield each value from {_code(text)}."
        where = " to the block" if self.lang == "ruby" else ""
        return f"Yield {_code(text)}{where}."

    def _update(self, node) -> str:
        text = _text(node)
        verb = "Increment" if "++" in text else "Decrement"
        target = self._named(node)
        return f"{verb} {_code(target[0] if target else text.strip('+-; '))}."

    def _raise(self, node, tail=False) -> list[str]:
        """raise/throw: 'Raise `ValueError` with `"bad"`.' or 'Re-raise the current exception.'"""
        cause = node.child_by_field_name("cause")
        values = [v for v in self._named(node) if v != cause]
        if not values:
            return ["Re-raise the current exception."]
        step = self._raise_phrase(values[0], values[1:])
        if cause is not None:
            step += f" from {_code(cause)}"
        return [step + "."]

    def _raise_phrase(self, exception, extra: list) -> str:
        """'Raise `Type` with `args`' for a constructor call, else 'Raise `expr`'."""
        if exception.type in _CALLS or exception.type in _NEWS:
            callee, args = self._callee_and_args(exception)
            callee = re.sub(r"^new\s+", "", callee)
            with_args = f" with {_code(args)}" if args else ""
            return f"{self.raise_verb} `{_squash(callee)}`{with_args}"
        if extra:  # Ruby: raise ArgumentError, "message"
            message = ", ".join(_text(e) for e in extra)
            return f"{self.raise_verb} {_code(exception)} with {_code(message)}"
        return f"{self.raise_verb} {_code(exception)}"

    # ---- assignments -------------------------------------------------------

    def _assignment(self, node, tail=False) -> list[str]:
        left = node.child_by_field_name("left") or node.child_by_field_name("name")
        right = node.child_by_field_name("right") or node.child_by_field_name("value")
        operator = self._operator(node)
        if left is None or right is None:
            return [f"Evaluate {_code(node)}."] if left is None else [f"Declare {_code(left)}."]
        if operator in ("=", ":=", "=&") or operator is None:
            if node.type == "assignment" and right.type == "assignment" and self.lang == "python":
                return self._chained(node)
            return self._set(left, right)
        return [self._augmented(left, operator, right)]

    def _chained(self, node) -> list[str]:
        """Python `a = b = value`: 'Set `a` and `b` to `value`.'"""
        targets = []
        while node.type == "assignment" and node.child_by_field_name("right") is not None:
            targets.append(_code(node.child_by_field_name("left")))
            node = node.child_by_field_name("right")
        return [f"Set {_join(targets)} to {_code(node)}{self._recursion_note(node)}."]

    def _operator(self, node) -> str | None:
        """The assignment operator token ('=', '+=', ':='...)."""
        op = node.child_by_field_name("operator")
        if op is not None and not op.is_named:
            return _text(op)
        for child in node.children:
            if not child.is_named and _text(child).endswith("="):
                return _text(child)
        return None

    def _augmented(self, left, operator: str, right) -> str:
        l_, r_ = _code(left), _code(right)
        note = self._recursion_note(right)
        phrases = {"+=": f"Add {r_} to {l_}", "-=": f"Subtract {r_} from {l_}",
                   "*=": f"Multiply {l_} by {r_}", "/=": f"Divide {l_} by {r_}",
                   ".=": f"Append {r_} to {l_}", "||=": f"If {l_} is not set, set it to {r_}",
                   "??=": f"If {l_} is not set, set it to {r_}"}
        phrase = phrases.get(operator, f"Update {l_} with {_code(operator + ' ' + _text(right))}")
        return phrase + note + "."

    def _set(self, left, right) -> list[str]:
        """Plain assignment, with the Go `x = append(x, y)` and PHP `$a[] = $x` idioms."""
        values = self._named(right) if right.type == "expression_list" else [right]
        targets = self._named(left) if left.type == "expression_list" else [left]
        if self.lang == "go" and len(values) == 1 and len(targets) == 1:
            appended = self._go_append(targets[0], values[0])
            if appended:
                return [appended]
        if left.type == "subscript_expression" and _text(left).replace(" ", "").endswith("[]"):
            target = self._named(left)[0] if self._named(left) else left
            return [f"Append {_code(right)} to {_code(target)}."]
        return self._set_named(_text(left), right)

    def _go_append(self, target, value) -> str | None:
        if value.type != "call_expression" or _text(value.child_by_field_name("function")) != "append":
            return None
        args = self._named(value.child_by_field_name("arguments"))
        if len(args) < 2 or _text(args[0]) != _text(target):
            return None
        rest = ", ".join(_text(a) for a in args[1:])
        return f"Append {_code(rest)} to {_code(target)}{self._recursion_note(value)}."

    def _empty_value(self, node) -> str | None:
        """'an empty list' for [], {}, set(), Hash.new...; None for anything else."""
        kind = node.type
        named = self._named(node)
        empties = {"list": "an empty list", "dictionary": "an empty dictionary",
                   "tuple": "an empty tuple", "array": "an empty array", "object": "an empty object",
                   "hash": "an empty hash", "array_creation_expression": "an empty array"}
        if kind in empties and not named:
            return empties[kind]
        if kind in ("string", "string_literal", "encapsed_string", "interpreted_string_literal") \
                and _text(node) in ('""', "''"):
            return "an empty string"
        if kind in _CALLS or kind in _NEWS:
            callee, args = self._callee_and_args(node)
            constructors = {"set": "an empty set", "list": "an empty list",
                            "dict": "an empty dictionary",
                            "Hash.new": "an empty hash", "Array.new": "an empty array",
                            "Set.new": "an empty set", "new Array": "an empty array",
                            "new Object": "an empty object"}
            if not args and callee in constructors:
                return constructors[callee]
            if not args and callee.startswith("new "):
                return f"a new `{_squash(callee[4:])}`"
        if kind == "composite_literal" and not self._named(node.child_by_field_name("body")):
            return f"an empty {_code(node.child_by_field_name('type'))}"
        return None

    def _declaration(self, node, tail=False) -> list[str]:
        """let/const/var, Java locals, Go var/const: one step per declarator."""
        children = []
        for child in node.named_children:
            children += child.named_children if child.type.endswith("_spec_list") else [child]
        declarators = [c for c in children
                       if c.type in ("variable_declarator", "var_spec", "const_spec",
                                     "static_variable_declaration")]
        steps, block = [], None
        for d in declarators:
            names = d.children_by_field_name("name")
            value = d.child_by_field_name("value")
            label = ", ".join(_text(n) for n in names) or _text(d)
            out = self._set_named(label, value) if value is not None else [f"Declare {_code(label)}."]
            block = getattr(out, "label", None)  # a nested function's, kept for "After the ..."
            steps += out
        return _Steps(steps, block) if block else steps

    def _set_named(self, label: str, value) -> list[str]:
        """'Set `x` to `expr`.', 'Initialize `x` to an empty list.', or a nested function."""
        if value.type in _FUNCTION_VALUES and value.child_by_field_name("body") is not None \
                and value.child_by_field_name("body").type in _BLOCKS:
            return self._function_steps(value, label)
        values = self._named(value) if value.type == "expression_list" else [value]
        empty = self._empty_value(values[0]) if len(values) == 1 else None
        if empty:
            return [f"Initialize {_code(label)} to {empty}."]
        return [f"Set {_code(label)} to {_code(value)}{self._recursion_note(value)}."]

    # ---- calls ----------------------------------------------------------

    def _callee_and_args(self, node) -> tuple[str, str]:
        """('obj.method', 'a, b') for any grammar's call node."""
        args = node.child_by_field_name("arguments")
        block = node.child_by_field_name("block")
        if args is None:
            args = next((c for c in node.named_children
                         if c.type in ("arguments", "argument_list")), None)
        end = args or block
        if end is not None:
            callee = node.text[: end.start_byte - node.start_byte].decode("utf-8", "replace")
        else:
            callee = _text(node)
        callee = " ".join(callee.split()).rstrip("(").strip()
        if args is None:
            inner = ""
        elif args.type in ("argument_list", "arguments"):
            inner = ", ".join(_text(a) for a in self._named(args))
        else:
            inner = _text(args)
        return callee, inner

    def _method_parts(self, callee: str) -> tuple[str | None, str]:
        """'a.b.c' -> ('a.b', 'c'); 'f' -> (None, 'f')."""
        parts = re.split(r"(\?\.|\.|->|::)", callee)
        if len(parts) < 3:
            return None, callee
        return "".join(parts[:-2]), parts[-1]

    def _is_recursive_call(self, node) -> bool:
        if node.type not in _CALLS or not self.name:
            return False
        callee, _ = self._callee_and_args(node)
        receiver, method = self._method_parts(callee)
        return method == self.name and (receiver is None or receiver in _SELF)

    def _recursion_note(self, node) -> str:
        """' (recursive call)' when `node` contains a call to the function itself."""
        stack = [node]
        while stack:
            current = stack.pop()
            if self._is_recursive_call(current):
                return " (recursive call)"
            stack.extend(current.named_children)
        return ""

    def _call_statement(self, node, tail=False) -> list[str]:
        callback = self._callback(node)
        if callback is None:
            return [self._call_step(node, tail)]
        logged = self._logged_block(node, callback[1])
        if logged:
            return [logged]
        return self._call_with_block(node, *callback, tail=tail)

    def _is_log_call(self, callee: str) -> bool:
        receiver, method = self._method_parts(callee)
        return bool(receiver) and "log" in receiver.lower() and method in _LOG_LEVELS

    def _logged_block(self, node, statements: list) -> str | None:
        """Ruby `log.info(key) { "message" }` -> 'Log `"message"` (info).'"""
        callee, _ = self._callee_and_args(node)
        if self.lang != "ruby" or not self._is_log_call(callee) or len(statements) != 1:
            return None
        return f"Log {_code(statements[0])} ({self._method_parts(callee)[1]})."

    def _call_step(self, node, tail=False) -> str:
        """One step for a call used as a statement."""
        callee, args = self._callee_and_args(node)
        receiver, method = self._method_parts(callee)
        arguments = node.child_by_field_name("arguments")
        arg_nodes = self._named(arguments)
        note = self._recursion_note(arguments) if arguments is not None else ""
        if self.lang == "ruby" and method in ("raise", "fail") and receiver is None:
            return self._raise_phrase(arg_nodes[0], arg_nodes[1:]) + "." if arg_nodes \
                else "Re-raise the current exception."
        if self.lang == "go" and callee == "panic":
            return f"Panic with {_code(args)}."
        if node.type in _NEWS:
            created = _code(re.sub(r"^new\s+", "", callee))
            return f"Create a new {created}" + (f" with {_code(args)}." if args else ".")
        if tail and self.lang == "ruby" and method not in _RUBY_NOT_VALUES \
                and not self._is_log_call(callee):
            return f"Return {_code(node)}{self._recursion_note(node)}."
        if self._is_recursive_call(node):
            return f"Recursively call `{method}`" + (f" with {_code(args)}." if args else ".")
        if callee in _PRINTERS:
            return f"Print {_code(args)}." if args else "Print an empty line."
        if self._is_log_call(callee) and args:
            return f"Log {_code(args)} ({method})."
        if receiver and receiver not in _NOT_CONTAINERS and method in _CONTAINER_METHODS \
                and len(arg_nodes) == 1:
            template = _CONTAINER_METHODS[method]
            return template.format(a=_code(args), r=_code(receiver)) + note + "."
        with_args = f" with {_code(args)}" if args else ""
        return f"Call {_code(callee)}{with_args}{note}."

    def _callback(self, node):
        """(params, statements, rest_args) for a call taking a Ruby block or a JS callback."""
        block = node.child_by_field_name("block")
        if block is not None and block.type in ("block", "do_block"):
            params = block.child_by_field_name("parameters")
            names = [_code(p) for p in self._named(params)] if params is not None else []
            body = block.child_by_field_name("body")
            return names, self._statements(body), None
        if node.type != "call_expression" or self.lang != "javascript":
            return None
        args = self._named(node.child_by_field_name("arguments"))
        functions = [a for a in args if a.type in _FUNCTION_VALUES
                     and a.child_by_field_name("body") is not None
                     and a.child_by_field_name("body").type == "statement_block"]
        if not functions:
            return None
        callback = functions[-1]
        names = self._parameters(callback)
        rest = [a for a in args if a != callback]
        return names, self._statements(callback.child_by_field_name("body")), rest

    def _call_with_block(self, node, params: list[str], statements: list, rest,
                         tail: bool = False) -> list[str]:
        """Ruby `xs.each do |x| ... end`, JS `xs.forEach(function (x) {...})` and friends.

        `params` are already quoted; `rest` are a JS call's other arguments.
        """
        callee, args = self._callee_and_args(node)
        if rest is not None:
            args = ", ".join(_text(a) for a in rest)
        receiver, method = self._method_parts(callee)
        if method == "loop" and receiver is None:
            return _Steps(self._clause("Loop forever", statements), "loop")
        if method == "times" and receiver:
            counter = f" (counter {_join(params)})" if params else ""
            return _Steps(self._clause(f"Repeat {_code(receiver)} times{counter}", statements), "loop")
        if receiver and (method.startswith("each") or method == "forEach") and params:
            subject = params[0]
            if method == "each_with_index" and len(params) == 2:
                subject += f" with index {params[1]}"
            elif len(params) > 1 and method != "each_with_object":
                subject = _join(params)
            source = _code(receiver)
            if method == "each_with_object" and len(params) == 2:
                start = f" (starting as {_code(args)})" if args else ""
                source += f", accumulating into {params[1]}{start}"
            return self._each_steps(subject, source, statements)
        returns = tail and method not in _RUBY_NOT_VALUES
        block_value = self.lang == "ruby" and method in _RUBY_BLOCK_VALUES
        return self._call_with_function(callee, args, params, statements, returns, block_value)

    def _call_with_function(self, callee: str, args: str, params: list[str], statements: list,
                            returns: bool, block_value: bool = False) -> list[str]:
        """'Call `f` with `a` and a callback taking `x` to ...' (inline or expanded)."""
        verb = "Return the result of calling" if returns and self.lang == "ruby" else "Call"
        kind = "a block" if self.lang == "ruby" else "a callback"
        taking = f" taking {_join(params)}" if params else ""
        with_args = f" with {_code(args)} and" if args else " with"
        head = f"{verb} {_code(callee)}{with_args} {kind}{taking}"
        steps = self._clause(head, statements, header=f"{head} that does the following",
                             sep=" to ", tail=block_value)
        return _Steps(steps, "call")

    # ---- conditions ----------------------------------------------------------

    def _cond(self, node, negated: bool = False) -> str:
        """A condition in words where a rule applies, else quoted code."""
        too_long = node.end_byte - node.start_byte > 4 * MAX_CONDITION  # quoted, and no deep recursion
        words = None if too_long else self._cond_words(node, negated)
        if words is None or len(words) > MAX_CONDITION:
            code = _code(self._unwrap(node))
            return f"not {code}" if negated else code
        return words

    def _unwrap(self, node):
        while node.type in ("parenthesized_expression", "parenthesized_statements") \
                and len(self._named(node)) == 1:
            node = self._named(node)[0]
        return node

    def _cond_words(self, node, negated: bool) -> str | None:
        node = self._unwrap(node)
        kind = node.type
        op = self._binary_operator(node)
        if kind in ("not_operator", "unary_expression", "unary", "unary_op_expression") \
                and op in ("not", "!"):
            inner = node.child_by_field_name("argument") or node.child_by_field_name("operand") \
                or self._named(node)[0]
            return self._cond_words(inner, not negated) or self._cond(inner, not negated)
        if kind in ("boolean_operator", "binary_expression", "binary") and op in _LOGICAL:
            return self._logical(node, op, negated)
        if kind in ("comparison_operator", "binary_expression", "binary", "instanceof_expression"):
            return self._comparison(node, negated)
        if kind in _CALLS:
            return self._predicate(node, negated)
        return None

    def _binary_operator(self, node) -> str | None:
        op = node.child_by_field_name("operator")
        if op is not None:
            return _text(op)
        for child in node.children:
            if not child.is_named and child.type not in ("(", ")"):
                return child.type
        return None

    def _logical(self, node, op: str, negated: bool) -> str | None:
        left = node.child_by_field_name("left")
        right = node.child_by_field_name("right")
        if left is None or right is None:
            return None
        words = f"{self._cond(left)} {_LOGICAL[op]} {self._cond(right)}"
        return f"not ({words})" if negated else words

    def _comparison(self, node, negated: bool) -> str | None:
        operands = self._named(node)
        if node.type == "comparison_operator":
            ops = [c.type for c in node.children_by_field_name("operators")]
            ops = [o for i, o in enumerate(ops) if i == 0 or o != ops[i - 1] or " " not in o]
        else:
            ops = [self._binary_operator(node)]
        if len(operands) != 2 or len(ops) != 1 or ops[0] not in _COMPARISONS:
            return None
        left, right = operands
        words = _COMPARISONS[ops[0]]
        if _text(right) in _NULLS and words in ("equals", "does not equal"):
            words = "is" if words == "equals" else "is not"
        if negated:
            if words not in _NEGATED:
                return None
            words = _NEGATED[words]
        return f"{_code(left)} {words} {_code(right)}"

    def _predicate(self, node, negated: bool) -> str | None:
        """isinstance(x, T), x.is_a?(T), x.nil?, Array.isArray(x), isset($x)..."""
        callee, _ = self._callee_and_args(node)
        receiver, method = self._method_parts(callee)
        args = self._named(node.child_by_field_name("arguments"))
        is_ = "is not" if negated else "is"
        if callee in ("isinstance", "issubclass") and len(args) == 2:
            relation = "an instance" if callee == "isinstance" else "a subclass"
            return f"{_code(args[0])} {is_} {relation} of {_code(args[1])}"
        if callee == "hasattr" and len(args) == 2:
            has = "does not have" if negated else "has"
            return f"{_code(args[0])} {has} attribute {_code(args[1])}"
        if callee in _PREDICATE_CALLS and len(args) == 1:
            phrase = _PREDICATE_CALLS[callee]
            if negated:
                phrase = phrase.replace("is ", "is not ", 1) if phrase.startswith("is ") \
                    else f"does not satisfy `{callee}`"
            return f"{_code(args[0])} {phrase}"
        if self.lang == "ruby" and receiver:
            if method in _RUBY_TYPE_CHECKS and len(args) == 1:
                return f"{_code(receiver)} {is_} an instance of {_code(args[0])}"
            if method in _RUBY_PREDICATES and not args:
                phrase = _RUBY_PREDICATES[method]
                if negated:
                    phrase = phrase.replace("is ", "is not ", 1).replace("has ", "does not have ", 1)
                return f"{_code(receiver)} {phrase}"
        return None

    # ---- compound statements --------------------------------------------

    def _if(self, node, tail=False) -> list[str]:
        """if / elif / else chains (and Ruby unless), inline or expanded per branch."""
        initializer = node.child_by_field_name("initializer")  # Go `if err := f(); err != nil`
        steps: list[str] = self._statement(initializer) if initializer is not None else []
        for i, (condition, statements, negated) in enumerate(self._if_chain(node)):
            if condition is None:
                head = "Otherwise"
            else:
                words = self._cond(condition, negated)
                head = f"If {words}" if i == 0 else f"Otherwise, if {words}"
            steps += self._clause(head, statements, tail=tail)
        return _Steps(steps, "if block")

    def _if_chain(self, node) -> list[tuple]:
        """[(condition or None, statements, negated)] for each branch, in order."""
        condition = node.child_by_field_name("condition")
        body = node.child_by_field_name("consequence") or node.child_by_field_name("body")
        chain = [(condition, self._statements(body), node.type == "unless")]
        for alternative in node.children_by_field_name("alternative"):
            chain += self._else_branches(alternative)
        return chain

    def _else_branches(self, node) -> list[tuple]:
        if node.type in ("if_statement", "elsif"):
            return self._if_chain(node)
        if node.type in ("elif_clause", "else_if_clause"):
            body = node.child_by_field_name("consequence") or node.child_by_field_name("body")
            return [(node.child_by_field_name("condition"), self._statements(body), False)]
        if node.type == "else_clause":
            body = node.child_by_field_name("body")
            inner = self._named(node) if body is None else [body]
            if len(inner) == 1 and inner[0].type == "if_statement":
                return self._if_chain(inner[0])  # JavaScript `else if`
            return [(None, self._statements(inner[0]) if len(inner) == 1 else inner, False)]
        return [(None, self._statements(node), False)]

    def _modifier(self, node, tail=False) -> list[str]:
        """Ruby `x if c`, `x unless c`, `x while c`, `x until c`."""
        body = node.child_by_field_name("body")
        condition = node.child_by_field_name("condition")
        words = {"if_modifier": ("If", False), "unless_modifier": ("If", True),
                 "while_modifier": ("While", False), "until_modifier": ("While", True)}
        verb, negated = words[node.type]
        head = f"{verb} {self._cond(condition, negated)}"
        return _Steps(self._clause(head, [body], tail=tail and verb == "If"), "if block")

    def _rescue_modifier(self, node, tail=False) -> list[str]:
        body = node.child_by_field_name("body")
        handler = node.child_by_field_name("handler")
        steps = self._statement(body) or [f"Evaluate {_code(body)}."]
        return [f"Try to {_lower_first(steps[0][:-1])}; on error, use {_code(handler)} instead."]

    def _for(self, node, tail=False) -> list[str]:
        """C-style for loops (JS, Java, PHP) and every Go for loop."""
        if self.lang == "go":
            return self._go_for(node)
        if self.lang == "python":
            return self._for_each(node)
        init = self._first_field(node, "initializer", "init", "initialize")
        condition = self._first_field(node, "condition")
        update = self._first_field(node, "increment", "update")
        body = node.child_by_field_name("body")
        return self._loop_parts(init, condition, update, body)

    def _first_field(self, node, *names):
        for name in names:
            child = node.child_by_field_name(name)
            if child is not None:
                return child
        return None

    def _loop_parts(self, init, condition, update, body) -> list[str]:
        if condition is not None and condition.type == "expression_statement":
            condition = (self._named(condition) or [None])[0]  # JavaScript `i < n;`
        if init is not None and init.type == "empty_statement":
            init = None
        parts = []
        if init is not None:
            parts.append(f"from {_code(_text(init).rstrip(';'))}")
        if condition is not None:
            parts.append(f"while {self._cond(condition)}")
        head = "Loop " + " ".join(parts) if parts else "Loop forever"
        if update is not None:
            head += f", updating {_code(update)}"
        return _Steps(self._clause(head, self._statements(body)), "loop")

    def _go_for(self, node) -> list[str]:
        body = node.child_by_field_name("body")
        clauses = [c for c in self._named(node) if c != body]
        if not clauses:
            return _Steps(self._clause("Loop forever", self._statements(body)), "loop")
        clause = clauses[0]
        if clause.type == "for_clause":
            return self._loop_parts(clause.child_by_field_name("initializer"),
                                    clause.child_by_field_name("condition"),
                                    clause.child_by_field_name("update"), body)
        if clause.type == "range_clause":
            left = clause.child_by_field_name("left")
            names = [n for n in self._named(left) if _text(n) != "_"] if left is not None else []
            subject = _join([_code(n) for n in names]) or "element"
            return self._each(subject, clause.child_by_field_name("right"), body)
        return self._while_parts(clause, body, False)

    def _for_each(self, node, tail=False) -> list[str]:
        """for x in xs (Python, Ruby), for..of/in (JS), for (T x : xs) (Java), foreach (PHP)."""
        if node.type == "foreach_statement":
            return self._php_foreach(node)
        left = self._first_field(node, "left", "name", "pattern")
        right = self._first_field(node, "right", "value")
        if right is not None and right.type == "in":  # Ruby `for a in b`
            right = self._named(right)[0]
        body = node.child_by_field_name("body")
        if node.type == "for_in_statement" and any(_text(c) == "in" for c in node.children
                                                   if not c.is_named):
            return self._each(f"key {_code(left)}", right, body)
        return self._each(self._loop_subject(left, right), self._loop_source(right), body)

    def _loop_subject(self, left, right) -> str:
        """Python idioms: `for i, x in enumerate(xs)`, `for k, v in d.items()`."""
        names = self._named(left)
        if right is not None and left.type in ("pattern_list", "tuple_pattern") and len(names) == 2:
            text = _text(right)
            if text.startswith("enumerate("):
                return f"index {_code(names[0])} and item {_code(names[1])}"
            if text.endswith(".items()"):
                return f"key {_code(names[0])} and value {_code(names[1])}"
        return _code(left)

    def _loop_source(self, right):
        text = _text(right)
        if right.type == "call" and text.startswith("enumerate("):
            args = self._named(right.child_by_field_name("arguments"))
            return args[0] if len(args) == 1 else right
        if right.type == "call" and text.endswith(".items()"):
            return right.child_by_field_name("function").child_by_field_name("object") or right
        return right

    def _php_foreach(self, node) -> list[str]:
        parts = [c for c in self._named(node) if c != node.child_by_field_name("body")]
        source = parts[0]
        value = parts[1] if len(parts) > 1 else None
        if value is not None and value.type == "pair":
            key, val = self._named(value)[:2]
            subject = f"key {_code(key)} and value {_code(val)}"
        else:
            subject = _code(value) if value is not None else "element"
        return self._each(subject, source, node.child_by_field_name("body"))

    def _each(self, subject: str, source, body) -> list[str]:
        source_text = _code(source) if source is not None else "the sequence"
        return self._each_steps(subject, source_text, self._statements(body))

    def _each_steps(self, subject: str, source: str, statements: list) -> list[str]:
        """'For each x in xs, y.' or 'Iterate over each x in xs:' and the body."""
        head = f"For each {subject} in {source}"
        header = f"Iterate over each {subject} in {source}"
        return _Steps(self._clause(head, statements, header=header), "loop")

    def _while(self, node, tail=False) -> list[str]:
        return self._while_parts(node.child_by_field_name("condition"),
                                 node.child_by_field_name("body"), node.type == "until")

    def _while_parts(self, condition, body, negated: bool) -> list[str]:
        if condition is not None and _text(self._unwrap(condition)) in _TRUE and not negated:
            head = "Loop forever"
        else:
            head = f"While {self._cond(condition, negated)}"
        return _Steps(self._clause(head, self._statements(body)), "loop")

    def _do_while(self, node, tail=False) -> list[str]:
        condition = node.child_by_field_name("condition")
        head = f"Repeat at least once while {self._cond(condition)}"
        return _Steps(self._clause(head, self._statements(node.child_by_field_name("body"))), "loop")

    def _try(self, node, tail=False) -> list[str]:
        """try/except/else/finally, Java try-with-resources, Ruby begin/rescue/ensure."""
        handler_types = {"except_clause", "catch_clause", "finally_clause", "rescue", "ensure",
                         "else_clause", "else", "except_group_clause"}
        body = node.child_by_field_name("body")
        if node.type == "begin":
            statements = [c for c in self._named(node) if c.type not in handler_types]
        else:
            statements = self._statements(body)
        resources = node.child_by_field_name("resources")
        if resources is not None:
            using = f"Using {_code(_text(resources)[1:-1])}"  # without the outer parentheses
            head, header = f"{using}, try to", f"{using}, try the following"
        else:
            head, header = "Try to", "Try the following"
        steps = self._clause(head, statements, header=header, sep=" ", tail=tail)
        for handler in self._named(node):
            if handler.type in handler_types:
                steps += self._handler(handler, tail)
        return _Steps(steps, "try block")

    def _handler(self, node, tail=False) -> list[str]:
        """One except/catch/rescue, else or finally/ensure clause."""
        if node.type in ("finally_clause", "ensure"):
            return self._clause("Finally", self._handler_body(node))
        if node.type in ("else_clause", "else"):
            return self._clause("If no exception was raised", self._handler_body(node), tail=tail)
        head = self._handler_head(node)
        return self._clause(head, self._handler_body(node), empty="ignore it", tail=tail)

    def _handler_body(self, node) -> list:
        body = node.child_by_field_name("body")
        if body is not None:
            return self._statements(body)
        blocks = [c for c in self._named(node) if c.type in _BLOCKS]
        if blocks:
            return self._statements(blocks[-1])
        skip = {"exceptions", "exception_variable"}
        return [c for c in self._named(node) if c.type not in skip]

    def _handler_head(self, node) -> str:
        """'If `ValueError` is raised (as `e`)' / 'If any exception is raised'."""
        verb = "raised" if self.raise_verb == "Raise" else "thrown"
        kinds, alias = self._handler_parts(node)
        anything = "an error" if self.lang == "javascript" else "any exception"
        subject = _code(kinds) if kinds else anything
        as_ = f" (as {_code(alias)})" if alias else ""
        return f"If {subject} is {verb}{as_}"

    def _handler_parts(self, node) -> tuple[str | None, str | None]:
        """(exception types, bound name) of a handler, as text."""
        if node.type == "rescue":
            kinds = node.child_by_field_name("exceptions")
            variable = node.child_by_field_name("variable")
            alias = self._named(variable)[0] if variable is not None and self._named(variable) else None
            return (_text(kinds) if kinds else None), (_text(alias) if alias else None)
        if node.type == "catch_clause":
            parameter = node.child_by_field_name("parameter")  # JavaScript
            if parameter is not None:
                return None, _text(parameter)
            kinds = node.child_by_field_name("type")  # PHP
            name = node.child_by_field_name("name")
            formal = next((c for c in self._named(node) if c.type == "catch_formal_parameter"), None)
            if formal is not None:  # Java
                types = next((c for c in self._named(formal) if c.type == "catch_type"), None)
                kinds, name = types, formal.child_by_field_name("name")
            return (_text(kinds) if kinds else None), (_text(name) if name else None)
        parts = [c for c in self._named(node) if c.type not in _BLOCKS]  # Python except
        if len(parts) == 1 and parts[0].type == "as_pattern":
            alias = parts[0].child_by_field_name("alias")
            return _text(self._named(parts[0])[0]), _text(alias) if alias else None
        if len(parts) == 2:  # Python 2: except Error, e
            return _text(parts[0]), _text(parts[1])
        return (_text(parts[0]) if parts else None), None

    def _with(self, node, tail=False) -> list[str]:
        clause = next((c for c in self._named(node) if c.type == "with_clause"), None)
        items = []
        for item in self._named(clause):
            value = item.child_by_field_name("value") or item
            if value.type == "as_pattern":
                alias = value.child_by_field_name("alias")
                items.append(f"{_code(self._named(value)[0])} as {_code(alias)}")
            else:
                items.append(_code(value))
        head = f"With {_join(items)}"
        return _Steps(self._clause(head, self._statements(node.child_by_field_name("body"))),
                      "with block")

    def _synchronized(self, node, tail=False) -> list[str]:
        lock = next((c for c in self._named(node) if c.type == "parenthesized_expression"), None)
        head = f"While holding the lock on {_code(self._unwrap(lock))}" if lock else "Synchronized"
        body = node.child_by_field_name("body") or self._named(node)[-1]
        return _Steps(self._clause(head, self._statements(body)), "synchronized block")

    def _switch(self, node, tail=False) -> list[str]:
        """switch/case, Ruby case/when, Python match, Go switch/select."""
        subject = self._first_field(node, "value", "condition", "subject")
        if node.type == "select_statement":
            steps = ["Wait for the first ready channel operation:"]
        elif subject is not None and node.type == "type_switch_statement":
            steps = [f"Switch on the type of {_code(self._unwrap(subject))}:"]
        elif subject is not None:
            steps = [f"Switch on {_code(self._unwrap(subject))}:"]
        else:
            steps = ["Check the following cases in order:"]
        for patterns, statements in self._cases(node):
            head = f"In case {_code(patterns)}" if patterns is not None else "By default"
            while statements and statements[-1].type in ("break_statement", "break"):
                statements = statements[:-1]
            steps += self._clause(head, statements, tail=tail)
        return _Steps(steps, "switch")

    def _cases(self, node) -> list[tuple]:
        """[(patterns text or None for default, statements)] for each case."""
        container = node.child_by_field_name("body")
        if container is None or node.type in ("case",):
            container = node
        cases = []
        for case in self._named(container):
            kind = case.type
            if kind in ("switch_default", "default_statement", "default_case", "else"):
                cases.append((None, self._case_body(case, [])))
            elif kind in ("switch_case", "case_statement", "expression_case", "type_case",
                          "communication_case", "when", "case_clause", "switch_rule",
                          "switch_block_statement_group"):
                labels = self._case_labels(case)
                text = ", ".join(_text(l) for l in labels)
                default = kind.startswith("switch_") and "default" in [_text(l) for l in labels]
                cases.append((None if default else text, self._case_body(case, labels)))
        return cases

    def _case_labels(self, case) -> list:
        for field in ("value", "pattern", "type", "communication"):
            found = case.children_by_field_name(field)
            if found:
                return found
        labels = [c for c in self._named(case) if c.type in ("switch_label", "case_pattern")]
        if labels and labels[0].type == "switch_label":
            return [self._named(l)[0] if self._named(l) else l for l in labels]
        return labels

    def _case_body(self, case, labels: list) -> list:
        body = case.children_by_field_name("body") or case.children_by_field_name("consequence")
        if len(body) == 1:
            return self._statements(body[0])
        if body:
            return body
        skip = {"switch_label", "case_pattern", "if_clause"}
        return [c for c in self._named(case) if c not in labels and c.type not in skip]

    def _labeled(self, node, tail=False) -> list[str]:
        inner = [c for c in self._named(node)
                 if c.type not in ("statement_identifier", "label_name", "identifier")]
        return self._body(inner)

    def _inner_block(self, node, tail=False) -> list[str]:
        return self._body(self._statements(node) if node.type in _BLOCKS else self._named(node))

    # ---- definitions ---------------------------------------------------------

    def _nested_function(self, node, tail=False) -> list[str]:
        """A function defined inside the function: its signature and body."""
        if node.type == "decorated_definition":
            node = node.child_by_field_name("definition")
            if node.type != "function_definition":
                return self._class(node)
        return self._function_steps(node, None)

    def _function_steps(self, node, name: str | None) -> list[str]:
        """'Define a nested function `g` that takes `x` to return ...' or its expanded form."""
        head = self._signature(node, nested=True, name=name)
        shown = self._function_name(node) or name or "the function"
        return _Steps(self._clause(head, self._function_body(node), sep=" to "),
                      f"definition of {_code(shown)}")

    def _class(self, node, tail=False) -> list[str]:
        name = node.child_by_field_name("name")
        return [f"Define a class {_code(name) if name is not None else ''}.".replace("  ", " ")]
