r"""Figures `pdc eval` reports: BLEU (TM), CodeBLEU (CB) and its parts, exact match.

    from pdc.metrics import score
    score(["def add(a, b):\n    return a + b", "x = 1"],   # predictions
          ["def add(x, y):\n    return x + y", "x = 2"],   # references
          "python")
    # {'n': 2, 'tm': 29.3, 'sm': 100.0, 'dm': 100.0, 'cb': 57.4, 'ngram': 14.7, ...} (rounded)

TM is CodeXGLUE's smoothed corpus BLEU-4, written here. CodeBLEU's four parts
follow the `codebleu` package (0.7.0): its n-gram and weighted n-gram BLEU are
called directly; its syntax and dataflow loops are re-done here on top of the
package's own parsing helpers, so that each snippet is parsed once and cached
(a reference is scored against k beams). Unlike the package, CB is recombined
without its `dataflow or 1` substitution. `METHOD` says exactly how each figure
is computed; tests/test_metrics.py checks the parts against `calc_codebleu`.
"""

from __future__ import annotations

import contextlib
import math
import re
import sys
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from importlib import metadata
from pathlib import Path

from codebleu import bleu as codebleu_bleu
from codebleu import weighted_ngram_match
from codebleu.dataflow_match import dfg_function, get_data_flow, normalize_dataflow
from codebleu.parser import remove_comments_and_docstrings
from codebleu.utils import get_tree_sitter_language
from tree_sitter import Node, Parser

from pdc.errors import PdcError

LANGUAGES = ("go", "java", "javascript", "php", "python", "ruby")
# CodeBLEU's default weights: n-gram, weighted n-gram, syntax, dataflow.
WEIGHTS = (0.25, 0.25, 0.25, 0.25)
MAX_ORDER = 4
# sm_ted: trees over this many nodes are cut (pre-order) so one pair costs at most
# O(cap^2 * depth^2) steps of Zhang-Shasha in pure Python.
TED_NODE_CAP = 200
KEYWORDS_DIR = Path(codebleu_bleu.__file__).parent / "keywords"

# The tokenizer of TM and of CodeBLEU's two n-gram parts. CodeXGLUE and CodeBLEU
# split on whitespace, which suits their pre-tokenised data; in raw code `foo(x)`
# would be one token, so split code into its lexical pieces instead.
_TOKEN = re.compile(
    r"""
      "{3}[\s\S]*?"{3} | '{3}[\s\S]*?'{3}           # triple-quoted strings
    | "(?:\\.|[^"\\\n])*" | '(?:\\.|[^'\\\n])*'     # one-line string literals
    | `(?:\\.|[^`\\])*`                             # template and raw strings
    | [$@]*[^\W\d]\w*                               # identifiers, $php and @ruby names
    | \d+(?:\.\d+)?(?:[eE][+-]?\d+)?\w*             # numbers
    | ===|!==|\.\.\.|<<=|>>=|\*\*=|->|=>|::|:=|<-   # multi-character operators
    | ==|!=|<=|>=|&&|\|\||\+\+|--|<<|>>|\*\*|[-+*/%&|^]=
    | \S                                            # any other character alone
    """,
    re.VERBOSE,
)


def _versions() -> str:
    names = ("codebleu", "tree-sitter", *(f"tree-sitter-{lang}" for lang in LANGUAGES))
    found = []
    for name in names:
        try:
            found.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            found.append(f"{name} missing")
    return ", ".join(found)


METHOD: dict[str, str] = {
    "scale": "Every figure is a percentage, 0-100.",
    "tokenizer": (
        "TM, ngram and weighted_ngram use one regex code tokenizer, applied identically "
        "to prediction and reference: triple-quoted strings, one-line string literals "
        "('...', \"...\", `...`) whole; identifiers (with leading $ or @) whole; numbers "
        "whole; each of these operators as one token: === !== ... <<= >>= **= -> => :: "
        ":= <- == != <= >= && || ++ -- << >> ** += -= *= /= %= &= |= ^=; every other "
        "non-space character alone. Whitespace and line breaks only separate tokens. "
        "Regex: pdc.metrics._TOKEN."
    ),
    "tm": (
        "Token match: CodeXGLUE's smoothed corpus BLEU-4 (tensorflow/nmt compute_bleu, "
        "smooth=True): clipped n-gram matches and candidate n-gram counts summed over the "
        "corpus for n=1..4, each precision (matches+1)/(count+1), geometric mean with "
        "equal weights, times the brevity penalty exp(1 - ref_len/pred_len) when "
        "pred_len <= ref_len (else 1). If every prediction is empty TM is 0 (nmt would "
        "divide by zero)."
    ),
    "ngram": (
        "CodeBLEU n-gram match: codebleu.bleu.corpus_bleu on the code tokens (NLTK corpus "
        "BLEU-4: clipped precision, zero match counts replaced by 0.1, brevity penalty; 0 "
        "if no unigram matches). Each snippet adds max(1, its n-gram count) to the order-n "
        "denominator, so snippets under 4 tokens keep identical code below 100."
    ),
    "weighted_ngram": (
        "CodeBLEU weighted n-gram match: codebleu.weighted_ngram_match.corpus_bleu on the "
        "code tokens: n-gram recall of the reference (n=1..4, epsilon 0.1 for zero counts), "
        "unigrams weighted 1 for a token in codebleu's keyword list for the language, else "
        "0.2. Kept as the package computes it: its brevity penalty measures each reference "
        "as 2 tokens long (the [tokens, weights] pair), so it almost never applies."
    ),
    "sm": (
        "Syntax match (codebleu 0.7.0 rule): both sides stripped, comments and docstrings "
        "removed, parsed with tree-sitter; the share of the reference's subtrees (every "
        "node with children, as an S-expression) that also occur in the prediction's "
        "tree, summed over the corpus. PHP without a leading '<?php' gets '<?php\\n' "
        "prepended before parsing (else tree-sitter-php sees plain text)."
    ),
    "dm": (
        "Dataflow match (codebleu 0.7.0 rule): def-use edges from codebleu's DFG "
        "extractors, variable names normalised, multiset overlap divided by the "
        "reference's edge count, summed over the corpus; references with no edges add "
        "nothing to either sum (as in CodeBLEU). If no reference has an edge, dm is "
        "undefined and reported as null (codebleu reports 0 then). Made reproducible: "
        "codebleu 0.7.0 merges each edge's parent names with list(set(...)), so their "
        "order, the variable numbering and DM change with PYTHONHASHSEED (between "
        "processes); pdc orders the parents by first occurrence as a graph node (then "
        "by name) before normalising, one fixed choice among the package's outcomes."
    ),
    "sm_ted": (
        "The paper's syntax match, per pair: 1 - TED(A_pred, A_ref) / max(|A_pred|, |A_ref|), "
        "A the tree-sitter tree of the snippet (prepared as for sm: stripped, comments "
        "removed, PHP tag added), keeping named nodes only (the abstract syntax: punctuation "
        "and operator tokens are dropped, so `a + b` and `a - b` have the same tree), each "
        "labelled by its node type (names and literals are not compared); TED is the Zhang-Shasha "
        "ordered tree edit distance with unit insert/delete/relabel costs (pdc.metrics.tree_edit_distance). "
        f"Cost bound: a tree over {TED_NODE_CAP} nodes is cut to its first {TED_NODE_CAP} "
        "nodes in pre-order (a connected tree holding the root) before the distance is taken. "
        "An empty (whitespace-only) side scores 0 (100 when both are empty). The corpus figure "
        "is the mean over pairs."
    ),
    "dm_jaccard": (
        "The paper's dataflow match, per pair: Jaccard overlap |E_pred & E_ref| / |E_pred | E_ref| "
        "of the def-use edges of sm/dm (codebleu's DFG extractors, variable names normalised "
        "in order of appearance), as multisets (min/max of counts). Pairs where neither side "
        "has an edge are left out; the corpus figure is the mean over the other pairs, null "
        "if there are none. Unlike dm it is symmetric, so extra edges in the prediction cost."
    ),
    "cb": (
        "CodeBLEU = 0.25*ngram + 0.25*weighted_ngram + 0.25*sm + 0.25*dm, each part at "
        "corpus level. codebleu 0.7.0 uses (dm or 1), which turns a 0 dataflow score "
        "into 1; pdc does not. When dm is undefined, CB is the mean of the other three."
    ),
    "em": (
        "Exact match: prediction and reference equal after stripping and collapsing "
        "every run of whitespace (spaces, tabs, newlines) to one space; otherwise "
        "character-exact: case and comments count, and so does whether there is "
        "whitespace at all ('a+b' differs from 'a + b')."
    ),
    "level": (
        "score() is corpus level (sums before dividing). sentence_codebleu() applies the "
        "same rules to one pair."
    ),
    "top_k": (
        "Best of k beams: per record the beam with an exact match, else the highest "
        "sentence_codebleu, earliest beam on ties; corpus figures are then computed on "
        "the chosen beams."
    ),
    "versions": _versions(),
}


# ----------------------------------------------------------------- public API


def tokenize(code: str) -> list[str]:
    """Split code into tokens (identifiers, literals, operators); see METHOD['tokenizer']."""
    return _TOKEN.findall(code or "")


def exact_match(prediction: str, reference: str) -> bool:
    """True if both are equal once whitespace runs are collapsed to one space."""
    return _squash(prediction) == _squash(reference)


def bleu_corpus(predictions: list[str], references: list[str]) -> float:
    """CodeXGLUE smoothed corpus BLEU-4 (0-100) on `tokenize`d code."""
    _check_pairs(predictions, references)
    return 100 * _smoothed_bleu([tokenize(p) for p in predictions], [tokenize(r) for r in references])


def score(predictions: list[str], references: list[str], lang: str, pool=None) -> dict:
    """Corpus-level TM, SM, DM, CB, CodeBLEU parts, EM, sm_ted and dm_jaccard, 0-100; see METHOD.

    `pool` (a concurrent.futures executor) computes the tree edit distances,
    the costly part, in parallel; the figures are the same.
    """
    _check_lang(lang)
    _check_pairs(predictions, references)
    preds = [p or "" for p in predictions]
    refs = [r or "" for r in references]
    pred_tokens = [tokenize(p) for p in preds]
    ref_tokens = [tokenize(r) for r in refs]
    parts = _codebleu_parts(preds, refs, pred_tokens, ref_tokens, lang)
    matches = sum(exact_match(p, r) for p, r in zip(preds, refs))
    return {
        "n": len(preds),
        "tm": 100 * _smoothed_bleu(pred_tokens, ref_tokens),
        "sm": 100 * parts.syntax,
        "dm": None if parts.dataflow is None else 100 * parts.dataflow,
        "cb": 100 * parts.codebleu(),
        "ngram": 100 * parts.ngram,
        "weighted_ngram": 100 * parts.weighted_ngram,
        "em": 100 * matches / len(preds),
        "sm_ted": _mean(_ted_similarities(preds, refs, lang, pool)),
        "dm_jaccard": _mean(_jaccard(_analyse(p, lang).flows, _analyse(r, lang).flows)
                            for p, r in zip(preds, refs)),
    }


def tree_edit_distance(a: "LabelTree", b: "LabelTree") -> int:
    """Zhang-Shasha ordered tree edit distance, unit costs (insert, delete, relabel)."""
    if not a.labels or not b.labels:
        return len(a.labels) + len(b.labels)
    if a == b:
        return 0  # same labels and shape
    la, lb = a.labels, b.labels
    lla, llb = a.leftmost, b.leftmost
    n, m = len(la), len(lb)
    treedist = [[0] * m for _ in range(n)]
    for i in a.keyroots:
        li = lla[i]
        rows = i - li + 2
        for j in b.keyroots:
            lj = llb[j]
            cols = j - lj + 2
            # per column: (y, node j1, whether j1's subtree starts at lj, its forest offset)
            columns = [(y, lj + y - 1, llb[lj + y - 1] == lj, llb[lj + y - 1] - lj) for y in range(1, cols)]
            fd = [list(range(cols))]  # forest distances, offsets li-1 / lj-1
            for x in range(1, rows):
                i1 = li + x - 1
                prev, cur = fd[x - 1], [x] * cols
                fd.append(cur)
                tree_i, label_i, td, p = lla[i1] == li, la[i1], treedist[i1], lla[i1] - li
                fdp = fd[p]
                for y, j1, tree_j, q in columns:
                    d = min(prev[y], cur[y - 1]) + 1
                    if tree_i and tree_j:
                        sub = prev[y - 1] + (label_i != lb[j1])
                        if sub < d:
                            d = sub
                        td[j1] = d
                    else:
                        sub = fdp[q] + td[j1]
                        if sub < d:
                            d = sub
                    cur[y] = d
    return treedist[n - 1][m - 1]


@dataclass(frozen=True)
class LabelTree:
    """A tree in Zhang-Shasha form: post-order labels, leftmost leaf of each node, keyroots."""

    labels: tuple[str, ...]
    leftmost: tuple[int, ...]
    keyroots: tuple[int, ...]

    @classmethod
    def from_nested(cls, tree) -> "LabelTree":
        """From (label, [children...]) tuples; for tests and hand-checked examples."""
        return cls._build(tree, lambda t: t[0], lambda t: t[1])

    @classmethod
    def _build(cls, root, label, children, cap: int | None = None) -> "LabelTree":
        # Iterative post-order walk; a child is entered only while fewer than `cap`
        # nodes have been entered in pre-order, so the kept nodes are a pre-order prefix.
        labels: list[str] = []
        leftmost: list[int] = []
        stack = [[root, iter(children(root)), 0]]  # node, its children left, first post-order index
        entered = 1
        while stack:
            top = stack[-1]
            child = next(top[1], None)
            if child is not None:
                if cap is None or entered < cap:
                    entered += 1
                    stack.append([child, iter(children(child)), len(labels)])
                continue
            stack.pop()
            leftmost.append(top[2])  # leftmost leaf = first post-order node of the subtree
            labels.append(label(top[0]))
        seen: dict[int, int] = {}
        for i, l in enumerate(leftmost):
            seen[l] = i  # the highest node with each leftmost leaf is a keyroot
        return cls(tuple(labels), tuple(leftmost), tuple(sorted(seen.values())))


def sentence_codebleu(prediction: str, reference: str, lang: str) -> float:
    """CodeBLEU (0-100) of one prediction against one reference, as in `score`."""
    _check_lang(lang)
    pred, ref = prediction or "", reference or ""
    parts = _codebleu_parts([pred], [ref], [tokenize(pred)], [tokenize(ref)], lang)
    return 100 * parts.codebleu()


def best_beam(beams: list[str], reference: str, lang: str) -> int:
    """Index of the best of k beams: an exact match, else the top sentence CodeBLEU."""
    if not beams:
        raise PdcError("no beams to choose from, give at least one prediction per record")
    return max(
        range(len(beams)),  # max() keeps the earliest beam on ties
        key=lambda i: (exact_match(beams[i], reference), sentence_codebleu(beams[i], reference, lang)),
    )


# ----------------------------------------------------------------- TM (BLEU)

# Written after tensorflow/nmt's compute_bleu as used by CodeXGLUE's evaluators
# (microsoft/CodeXGLUE Text-Code/text-to-code/evaluator/bleu.py, `_bleu` sets smooth=True).


def _ngram_counts(tokens: list[str]) -> Counter:
    """Every n-gram of order 1..MAX_ORDER with its count."""
    return Counter(
        tuple(tokens[i : i + n]) for n in range(1, MAX_ORDER + 1) for i in range(len(tokens) - n + 1)
    )


def _smoothed_bleu(predictions: list[list[str]], references: list[list[str]]) -> float:
    """Add-one smoothed BLEU-4 with brevity penalty over a tokenised corpus (0-1)."""
    matches = [0] * MAX_ORDER
    possible = [0] * MAX_ORDER
    pred_len = ref_len = 0
    for pred, ref in zip(predictions, references):
        pred_len += len(pred)
        ref_len += len(ref)
        for gram, count in (_ngram_counts(pred) & _ngram_counts(ref)).items():
            matches[len(gram) - 1] += count
        for n in range(1, MAX_ORDER + 1):
            possible[n - 1] += max(0, len(pred) - n + 1)
    if pred_len == 0:
        return 0.0  # nmt divides by zero here; nothing predicted matches nothing
    log_precision = sum(math.log((m + 1) / (p + 1)) for m, p in zip(matches, possible)) / MAX_ORDER
    return math.exp(log_precision) * _brevity_penalty(pred_len, ref_len)


def _brevity_penalty(pred_len: int, ref_len: int) -> float:
    """1 for predictions longer than the reference, else exp(1 - ref/pred)."""
    if pred_len > ref_len:
        return 1.0
    return math.exp(1 - ref_len / pred_len)


# ----------------------------------------------------------------- CodeBLEU


@dataclass
class _Parts:
    """CodeBLEU's four parts at corpus level, 0-1; dataflow None when undefined."""

    ngram: float
    weighted_ngram: float
    syntax: float
    dataflow: float | None

    def codebleu(self) -> float:
        """Weighted sum of the parts, renormalised over the defined ones (no `or 1`)."""
        values = (self.ngram, self.weighted_ngram, self.syntax, self.dataflow)
        defined = [(w, v) for w, v in zip(WEIGHTS, values) if v is not None]
        return sum(w * v for w, v in defined) / sum(w for w, _ in defined)


def _codebleu_parts(preds, refs, pred_tokens, ref_tokens, lang) -> _Parts:
    """Compute the four parts for a corpus of (prediction, reference) pairs."""
    with _stdout_to_stderr():
        ngram = codebleu_bleu.corpus_bleu([[r] for r in ref_tokens], pred_tokens)
        weighted = weighted_ngram_match.corpus_bleu(
            [[[r, _keyword_weights(r, lang)]] for r in ref_tokens], pred_tokens
        )
        trees = [(_analyse(p, lang), _analyse(r, lang)) for p, r in zip(preds, refs)]
    syntax = _ratio(_syntax_counts(p, r) for p, r in trees)
    dataflow = _ratio(_dataflow_counts(p, r) for p, r in trees)
    return _Parts(float(ngram), float(weighted), syntax, dataflow)  # syntax: roots always count


def _mean(values) -> float | None:
    """Mean of the defined values, 0-100; None when none is defined."""
    defined = [v for v in values if v is not None]
    return 100 * sum(defined) / len(defined) if defined else None


def _ted_similarities(preds: list[str], refs: list[str], lang: str, pool=None) -> list[float]:
    jobs = [(p, r, lang) for p, r in zip(preds, refs)]
    if pool is None or len(jobs) < 8:
        return [_ted_similarity(*job) for job in jobs]
    return list(pool.map(_ted_job, jobs, chunksize=max(1, len(jobs) // 32)))


def _ted_job(job: tuple[str, str, str]) -> float:
    return _ted_similarity(*job)


def _ted_similarity(pred: str, ref: str, lang: str) -> float:
    """1 - TED / max(|A_pred|, |A_ref|); 0 against an empty side, 1 when both are empty."""
    if not pred.strip() or not ref.strip():
        return float(not pred.strip() and not ref.strip())
    return _ted_pair(pred, ref, lang)


@lru_cache(maxsize=4096)
def _ted_pair(pred: str, ref: str, lang: str) -> float:
    """Cached: top-1 and top-k often score the same beam."""
    a, b = _label_tree(pred, lang), _label_tree(ref, lang)
    return 1 - tree_edit_distance(a, b) / max(len(a.labels), len(b.labels))


def _jaccard(pred: Counter, ref: Counter) -> float | None:
    """Multiset Jaccard of two edge counters; None when both are empty."""
    union = sum((pred | ref).values())
    return sum((pred & ref).values()) / union if union else None


@lru_cache(maxsize=512)
def _label_tree(code: str, lang: str) -> LabelTree:
    source = _parsable_source(code, lang)
    root = _parser(lang).parse(bytes(source, "utf8")).root_node
    return LabelTree._build(root, lambda n: n.type, lambda n: n.named_children, TED_NODE_CAP)


def _ratio(counts) -> float | None:
    """Sum of matches over sum of totals; None when the totals are 0."""
    matched = total = 0
    for m, t in counts:
        matched += m
        total += t
    return matched / total if total else None


def _keyword_weights(ref_tokens: list[str], lang: str) -> dict[str, float]:
    """codebleu's unigram weights: 1 for a language keyword, 0.2 for anything else."""
    keywords = _keywords(lang)
    return {t: 1 if t in keywords else 0.2 for t in ref_tokens}


@dataclass(frozen=True)
class _Tree:
    """What syntax and dataflow match need from one parsed snippet."""

    subtrees: tuple[int, ...]  # hash of the S-expression of every node with children
    subtree_set: frozenset[int]
    flows: Counter  # normalised dataflow edges -> count; read only


def _syntax_counts(pred: _Tree, ref: _Tree) -> tuple[int, int]:
    """(reference subtrees found in the prediction, reference subtrees)."""
    return sum(s in pred.subtree_set for s in ref.subtrees), len(ref.subtrees)


def _dataflow_counts(pred: _Tree, ref: _Tree) -> tuple[int, int]:
    """(reference edges matched one-to-one in the prediction, reference edges)."""
    return sum((ref.flows & pred.flows).values()), sum(ref.flows.values())


@lru_cache(maxsize=512)
def _analyse(code: str, lang: str) -> _Tree:
    """Parse one snippet the way codebleu 0.7.0 does; cached, as beams share a reference."""
    source = _parsable_source(code, lang)
    parser = _parser(lang)
    root = parser.parse(bytes(source, "utf8")).root_node
    subtrees = tuple(_subtree_hashes(root))
    edges = normalize_dataflow(_ordered_parents(get_data_flow(source, [parser, dfg_function[lang]])))
    flows = Counter((var, relation, tuple(parents)) for var, relation, parents in edges)
    return _Tree(subtrees, frozenset(subtrees), flows)


def _ordered_parents(dfg: list) -> list:
    """codebleu's DFG with each edge's parent names in a fixed order.

    codebleu 0.7.0 merges parent lists with list(set(...)), so their order, and with
    it normalize_dataflow's variable numbering and DM itself, changes with
    PYTHONHASHSEED (from one process to the next). pdc orders the parents by where
    each name first occurs as a node of the graph (nodes are sorted by position),
    then by name: the package's own rule with one fixed choice of order.
    """
    first: dict[str, int] = {}
    for rank, item in enumerate(dfg):
        first.setdefault(item[0], rank)
    last = len(dfg)
    return [(item[0], item[1], item[2], sorted(item[3], key=lambda name: (first.get(name, last), name)), item[4])
            for item in dfg]


def _parsable_source(code: str, lang: str) -> str:
    """Strip, add the PHP open tag if missing, drop comments (kept if that fails)."""
    source = code.strip()
    if lang == "php" and not source.startswith("<?php"):
        source = "<?php\n" + source
    try:
        return remove_comments_and_docstrings(source, lang)
    except Exception:  # codebleu does the same: unparsable code keeps its comments
        return source


def _subtree_hashes(root: Node) -> list[int]:
    """Hashed S-expressions of the root and of every descendant that has children.

    codebleu compares the S-expression strings; their hashes compare the same way
    (a 64-bit collision is negligible) and keep the cache small, since the strings
    of nested nodes repeat each other and grow with depth squared.
    """
    stack, hashes = [root], []
    while stack:
        node = stack.pop()
        hashes.append(hash(str(node)))
        stack.extend(child for child in node.children if child.child_count)
    return hashes


@lru_cache(maxsize=None)
def _parser(lang: str) -> Parser:
    """One tree-sitter parser per language, reused for every snippet."""
    parser = Parser()
    parser.language = get_tree_sitter_language(lang)
    return parser


@lru_cache(maxsize=None)
def _keywords(lang: str) -> frozenset[str]:
    """codebleu's keyword list for a language."""
    text = (KEYWORDS_DIR / f"{lang}.txt").read_text(encoding="utf-8")
    return frozenset(line.strip() for line in text.splitlines())


# ----------------------------------------------------------------- helpers


def _squash(text: str) -> str:
    return " ".join((text or "").split())


@contextlib.contextmanager
def _stdout_to_stderr():
    """Keep stdout for data: anything the scoring libraries print goes to stderr."""
    with contextlib.redirect_stdout(sys.stderr):
        yield


def _check_lang(lang: str) -> None:
    if lang not in LANGUAGES:
        raise PdcError(f"unsupported language '{lang}', use one of: {', '.join(LANGUAGES)}")


def _check_pairs(predictions: list[str], references: list[str]) -> None:
    if len(predictions) != len(references):
        raise PdcError(
            f"{len(predictions)} predictions but {len(references)} references, "
            "give one reference per prediction"
        )
    if not predictions:
        raise PdcError("nothing to score, give at least one prediction and its reference")
