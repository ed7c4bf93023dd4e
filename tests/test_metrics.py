"""Golden tests for pdc.metrics: hand-checked BLEU, CodeBLEU against the codebleu package."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from codebleu import calc_codebleu

from pdc.errors import PdcError
from pdc.metrics import (
    LANGUAGES,
    METHOD,
    best_beam,
    bleu_corpus,
    exact_match,
    score,
    sentence_codebleu,
    tokenize,
)

DATA = Path(__file__).parent / "data" / "metrics_pairs.jsonl"
PARTS = {  # our key -> calc_codebleu's key
    "ngram": "ngram_match_score",
    "weighted_ngram": "weighted_ngram_match_score",
    "sm": "syntax_match_score",
    "dm": "dataflow_match_score",
}

# One small function per language, and a variant with other names and one more operation.
SNIPPETS = {
    "python": (
        "def add(a, b):\n    total = a + b\n    return total",
        "def add(x, y):\n    s = x - y * 2\n    return s",
    ),
    "java": (
        "int add(int a, int b) {\n    int total = a + b;\n    return total;\n}",
        "int add(int x, int y) {\n    int s = x - y * 2;\n    return s;\n}",
    ),
    "javascript": (
        "function add(a, b) {\n  const total = a + b;\n  return total;\n}",
        "function add(x, y) {\n  let s = x - y * 2;\n  return s;\n}",
    ),
    "go": (
        "func add(a int, b int) int {\n\ttotal := a + b\n\treturn total\n}",
        "func add(x int, y int) int {\n\ts := x - y * 2\n\treturn s\n}",
    ),
    "php": (
        "function add($a, $b) {\n    $total = $a + $b;\n    return $total;\n}",
        "function add($x, $y) {\n    $s = $x - $y * 2;\n    return $s;\n}",
    ),
    "ruby": (
        "def add(a, b)\n  total = a + b\n  total\nend",
        "def add(x, y)\n  s = x - y * 2\n  s\nend",
    ),
}
UNRELATED_PY = ("class A:\n    pass", "def f(x):\n    y = x + 1\n    return y")


def package_parts(predictions, references, lang):
    """calc_codebleu's parts (0-100) with pdc's tokenizer; PHP parsed with its open tag."""
    result = calc_codebleu(references, predictions, lang, tokenizer=tokenize)
    if lang == "php":  # n-grams on the code as given, trees on the tagged code
        tag = "<?php\n"
        tagged = calc_codebleu([tag + r for r in references], [tag + p for p in predictions], lang)
        for key in ("syntax_match_score", "dataflow_match_score"):
            result[key] = tagged[key]
    return {ours: 100 * result[theirs] for ours, theirs in PARTS.items()}


def real_pairs(lang):
    """Each stored function scored against the next one of the same language."""
    rows = [json.loads(line) for line in DATA.read_text().splitlines()]
    codes = [row["code"] for row in rows if row["language"] == lang]
    return codes[1:] + codes[:1], codes


# ----------------------------------------------------------------- tokenizer and TM


def test_tokenize_splits_code_into_lexical_pieces():
    assert tokenize('if (a>=b) return "x y";') == [
        "if", "(", "a", ">=", "b", ")", "return", '"x y"', ";",
    ]
    assert tokenize("$this->name = @x ?? 0x1F + 1.5e3") == [
        "$this", "->", "name", "=", "@x", "?", "?", "0x1F", "+", "1.5e3",
    ]
    assert tokenize('s = """two\nlines"""  # it\'s') == [
        "s", "=", '"""two\nlines"""', "#", "it", "'", "s",
    ]
    assert tokenize("") == [] and tokenize("   \n\t") == []


@pytest.mark.parametrize(
    "predictions, references, expected",
    [
        # unigrams 2/3, bigrams 1/2, trigrams 0/1, 4-grams 0/0; add-one: 3/4, 2/3, 1/2, 1/1;
        # lengths equal so BP = 1: BLEU = (3/4 * 2/3 * 1/2 * 1)^(1/4) = 0.25^0.25
        (["a b c"], ["a b d"], 0.25**0.25),
        # all n-grams match (2/2, 1/1, 0/0, 0/0 -> 1, 1, 1, 1); BP = exp(1 - 4/2) = e^-1
        (["a b"], ["a b c d"], math.exp(-1)),
        # clipping: 'a' counts once: 1/4, 0/3, 0/2, 0/1 -> 2/5, 1/4, 1/3, 1/2; BP 1 (4 > 2)
        (["a a a a"], ["a b"], (2 / 5 * 1 / 4 * 1 / 3 * 1 / 2) ** 0.25),
        # code tokens f ( x ) vs f ( y ): 3/4, 1/3, 0/2, 0/1 -> 4/5, 2/4, 1/3, 1/2 = (1/15)^0.25
        (["f(x)"], ["f(y)"], (1 / 15) ** 0.25),
        # corpus sums before dividing: (2+2)/(3+2), (1+1)/(2+1), 0/1, 0/0
        # -> 5/6, 3/4, 1/2, 1/1, lengths 5 = 5: (5/6 * 3/4 * 1/2)^0.25 = 0.3125^0.25
        (["a b c", "x y"], ["a b d", "x y"], 0.3125**0.25),
        (["x"], ["x"], 1.0),  # one matching token: 2/2 then 1/1 on the empty orders
        ([""], ["a b"], 0.0),  # nothing predicted
    ],
)
def test_bleu_hand_checked(predictions, references, expected):
    assert bleu_corpus(predictions, references) == pytest.approx(100 * expected)


def test_bleu_hand_checked_empty_reference_side():
    # 0/2 and 0/1 matches -> (1/3 * 1/2 * 1 * 1)^0.25, BP 1 because the prediction is longer
    assert bleu_corpus(["a b"], [""]) == pytest.approx(100 * (1 / 6) ** 0.25)


# ----------------------------------------------------------------- CodeBLEU


@pytest.mark.parametrize("lang", LANGUAGES)
def test_identical_code_scores_100_everywhere(lang):
    code = SNIPPETS[lang][0]
    result = score([code, code], [code, code], lang)
    assert result["n"] == 2
    for key in ("tm", "sm", "dm", "cb", "ngram", "weighted_ngram", "em"):
        assert result[key] == pytest.approx(100), key
    assert sentence_codebleu(code, code, lang) == pytest.approx(100)


@pytest.mark.parametrize("lang", LANGUAGES)
def test_each_language_matches_the_package_on_a_tiny_pair(lang):
    reference, prediction = SNIPPETS[lang]
    result = score([prediction], [reference], lang)
    parts = package_parts([prediction], [reference], lang)
    for key, value in parts.items():
        assert result[key] == pytest.approx(value), key
    assert 0 < result["cb"] < 100
    assert result["sm"] < 100 and result["dm"] > 0  # a real parse, with dataflow edges


def test_php_without_open_tag_is_parsed_as_php():
    reference, prediction = SNIPPETS["php"]
    # bare PHP parses as '(program (text))' in tree-sitter-php: the package gives SM 100
    bare = calc_codebleu([reference], [prediction], "php")
    assert bare["syntax_match_score"] == 1.0 and bare["dataflow_match_score"] == 0
    assert score([prediction], [reference], "php")["sm"] < 100
    tagged = "<?php\n" + prediction  # an existing tag is kept, not doubled
    assert score([tagged], [reference], "php")["sm"] == score([prediction], [reference], "php")["sm"]


@pytest.mark.parametrize("lang", ["python", "ruby"])
def test_parts_equal_the_package_on_real_pairs(lang):
    predictions, references = real_pairs(lang)
    result = score(predictions, references, lang)
    parts = package_parts(predictions, references, lang)
    for key in ("ngram", "weighted_ngram", "sm"):
        assert result[key] == pytest.approx(parts[key]), key
    # DM: the package's value depends on the hash seed (see test_dm_is_reproducible_across_processes)
    low, high = min(PACKAGE_DM[lang]), max(PACKAGE_DM[lang])
    assert low - 1e-9 <= result["dm"] <= high + 1e-9
    expected_cb = (parts["ngram"] + parts["weighted_ngram"] + parts["sm"] + result["dm"]) / 4  # no `or 1`
    assert result["cb"] == pytest.approx(expected_cb)
    for prediction, reference in list(zip(predictions, references))[:4]:
        sentence_parts = package_parts([prediction], [reference], lang)
        mine = score([prediction], [reference], lang)["dm"]
        expected = (sentence_parts["ngram"] + sentence_parts["weighted_ngram"] + sentence_parts["sm"]
                    + (mine if mine is not None else 0)) / (4 if mine is not None else 3)
        assert sentence_codebleu(prediction, reference, lang) == pytest.approx(expected)


SEED_SCRIPT = """
import json, sys
sys.path.insert(0, {tests!r})
from test_metrics import package_parts, real_pairs
from pdc.metrics import score
out = {{}}
for lang in ("python", "ruby"):
    predictions, references = real_pairs(lang)
    out[lang] = [package_parts(predictions, references, lang)["dm"], score(predictions, references, lang)["dm"]]
print(json.dumps(out))
"""


def _dm_under_seeds(seeds) -> dict:
    """{lang: ([package DM per seed], [pdc DM per seed])}, each seed in its own process."""
    import os
    import subprocess
    import sys

    found: dict = {"python": ([], []), "ruby": ([], [])}
    for seed in seeds:
        env = {**os.environ, "PYTHONHASHSEED": str(seed)}
        proc = subprocess.run([sys.executable, "-c", SEED_SCRIPT.format(tests=str(Path(__file__).parent))],
                              capture_output=True, text=True, env=env, timeout=300, check=True)
        for lang, (package, mine) in json.loads(proc.stdout.splitlines()[-1]).items():
            found[lang][0].append(package)
            found[lang][1].append(mine)
    return found


_SEEDS: dict = {}  # filled once per module run by the fixture below
PACKAGE_DM: dict = {}


@pytest.fixture(scope="module", autouse=True)
def _package_dm_under_seeds():
    _SEEDS.update(_dm_under_seeds(range(4)))
    PACKAGE_DM.update({lang: package for lang, (package, _) in _SEEDS.items()})


def test_dm_is_reproducible_across_processes():
    """codebleu 0.7.0 merges parent names with list(set(...)): its DM moves with PYTHONHASHSEED."""
    for lang, (package, mine) in _SEEDS.items():
        assert len(set(mine)) == 1, (lang, mine)  # pdc: one value whatever the seed
    assert any(len(set(package)) > 1 for package, _ in _SEEDS.values())  # the package: several


def test_unrelated_code_scores_low():
    prediction, reference = UNRELATED_PY
    result = score([prediction], [reference], "python")
    assert result["cb"] < 10
    assert result["em"] == 0


def test_or_1_regression_package_inflates_unrelated_code():
    # codebleu 0.7.0: codebleu = ... + theta * (dataflow_match_score or 1), so a dataflow score
    # of 0 counts as 1 and unrelated code gets 25. pdc recombines the parts without it.
    prediction, reference = UNRELATED_PY
    package = calc_codebleu([reference], [prediction], "python")
    assert package["dataflow_match_score"] == 0
    assert package["codebleu"] == pytest.approx(0.25)
    ours = score([prediction], [reference], "python")
    assert ours["dm"] == 0
    assert ours["cb"] < 1  # only ':' is shared
    assert ours["cb"] < 100 * package["codebleu"]
    assert sentence_codebleu(prediction, reference, "python") < 100 * package["codebleu"]


def test_reference_without_dataflow_edges_leaves_dm_undefined():
    code = "def f():\n    return 1"  # no def-use edge
    package = calc_codebleu([code], [code], "python")
    assert package["dataflow_match_score"] == 0  # the package's placeholder
    result = score([code], [code], "python")
    assert result["dm"] is None
    assert result["cb"] == pytest.approx(100)  # mean of the three defined parts
    near = score(["def f():\n    return 2"], [code], "python")
    assert near["cb"] == pytest.approx((near["ngram"] + near["weighted_ngram"] + near["sm"]) / 3)


def test_edgeless_references_are_left_out_of_the_dm_denominator():
    with_edges, prediction = SNIPPETS["python"]
    edgeless = "def f():\n    return 1"
    alone = score([prediction], [with_edges], "python")["dm"]
    mixed = score([prediction, "x = 2"], [with_edges, edgeless], "python")["dm"]
    assert mixed == pytest.approx(alone)


# ----------------------------------------------------------------- awkward predictions


@pytest.mark.parametrize("lang", LANGUAGES)
def test_empty_prediction_scores_zero(lang):
    result = score(["", "   "], [SNIPPETS[lang][0]] * 2, lang)
    for key in ("tm", "sm", "dm", "cb", "ngram", "weighted_ngram", "em"):
        assert result[key] == 0, key
    assert sentence_codebleu("", SNIPPETS[lang][0], lang) == 0


def test_unparsable_prediction_scores_without_error():
    reference = SNIPPETS["python"][0]
    garbage = ["def add(a, b:\n    total = a +\n", ")))(((", "(" * 300 + "x"]
    result = score(garbage, [reference] * 3, "python")
    assert 0 <= result["sm"] < 100 and 0 <= result["cb"] < 50
    assert 0 <= sentence_codebleu("def def def (((", reference, "python") < 50


def test_single_token_prediction():
    reference = SNIPPETS["java"][0]
    result = score(["return"], [reference], "java")
    assert 0 <= result["cb"] < 25 and result["tm"] < 1  # 21 reference tokens: BP = e^(1 - 21/1)
    # codebleu's own n-gram BLEU is not 100 for one identical token: orders 2-4 have no
    # n-grams and get epsilon 0.1 each; TM's add-one rule gives 100.
    same = score(["x"], ["x"], "python")
    assert same["tm"] == pytest.approx(100)
    assert same["ngram"] == pytest.approx(100 * 0.1**0.75)


def test_stdout_stays_clean(capsys):
    code = "def f():\n    return 1"
    score([code, ""], [code, "???"], "python")
    sentence_codebleu("<?php", "", "php")
    assert capsys.readouterr().out == ""


# ----------------------------------------------------------------- EM, beams, errors, METHOD


def test_exact_match_collapses_whitespace_only():
    assert exact_match("def f(x):\n    return x\n", "def f(x):  return x")
    assert exact_match("  a\tb ", "a b")
    assert not exact_match("a+b", "a + b")
    assert not exact_match("A", "a")
    assert score(["a  b", "c"], ["a b", "d"], "python")["em"] == 50


def test_best_beam_prefers_exact_match_then_codebleu():
    reference, variant = SNIPPETS["python"]
    spaced = reference.replace("a + b", "a  +  b")
    assert best_beam(["", variant, spaced], reference, "python") == 2
    assert best_beam([UNRELATED_PY[0], variant, ""], reference, "python") == 1
    assert best_beam([variant, variant], reference, "python") == 0  # earliest on ties
    with pytest.raises(PdcError):
        best_beam([], reference, "python")


def test_unsupported_language_names_the_supported_ones():
    with pytest.raises(PdcError, match="go, java, javascript, php, python, ruby"):
        score(["x"], ["x"], "cobol")
    with pytest.raises(PdcError, match="unsupported language"):
        sentence_codebleu("x", "x", "c_sharp")


def test_bad_pairs_raise():
    with pytest.raises(PdcError, match="2 predictions but 1 references"):
        score(["a", "b"], ["a"], "python")
    with pytest.raises(PdcError, match="nothing to score"):
        bleu_corpus([], [])


def test_method_describes_every_figure():
    for key in ("tokenizer", "tm", "ngram", "weighted_ngram", "sm", "dm", "sm_ted", "dm_jaccard", "cb", "em",
                "level", "top_k"):
        assert isinstance(METHOD[key], str) and METHOD[key], key
    assert "or 1" in METHOD["cb"] and "codebleu 0.7.0" in METHOD["versions"]
    assert json.loads(json.dumps(METHOD)) == METHOD  # copied into eval's summary record


# ----------------------------------------------------------------- the paper's own SM (TED) and DM (Jaccard)

from pdc.metrics import TED_NODE_CAP, LabelTree, tree_edit_distance  # noqa: E402


def tree(nested):
    return LabelTree.from_nested(nested)


def test_zhang_shasha_hand_checked():
    # Zhang & Shasha (1989)'s example: f(d(a c(b)) e) -> f(c(d(a b)) e) costs 2
    # (delete c under d, insert c above d).
    left = ("f", [("d", [("a", []), ("c", [("b", [])])]), ("e", [])])
    right = ("f", [("c", [("d", [("a", []), ("b", [])])]), ("e", [])])
    assert tree_edit_distance(tree(left), tree(right)) == 2
    assert tree_edit_distance(tree(right), tree(left)) == 2
    assert tree_edit_distance(tree(left), tree(left)) == 0
    assert tree_edit_distance(tree(("a", [])), tree(("b", []))) == 1  # one relabel
    assert tree_edit_distance(tree(("a", [("b", []), ("c", [])])), tree(("a", []))) == 2  # two deletes
    # post-order labels, leftmost leaves and keyroots as in the paper
    t = tree(left)
    assert t.labels == ("a", "b", "c", "d", "e", "f")
    assert t.leftmost == (0, 1, 1, 0, 4, 0) and t.keyroots == (2, 4, 5)


def test_node_cap_keeps_a_preorder_prefix():
    chain = ("n0", [])
    for i in range(1, TED_NODE_CAP + 50):
        chain = (f"n{i}", [chain])
    cut = LabelTree._build(chain, lambda t: t[0], lambda t: t[1], TED_NODE_CAP)
    assert len(cut.labels) == TED_NODE_CAP
    assert cut.labels[-1] == f"n{TED_NODE_CAP + 49}"  # the root is kept


def test_sm_ted_and_dm_jaccard_hand_checked_python():
    # "x = 1\ny = x\nz = y" has 13 named nodes, "x = 1\ny = x" 9: TED = 4 deletions.
    # Edges: the reference's 4 def-use edges all occur among the prediction's 6.
    r = score(["x = 1\ny = x\nz = y"], ["x = 1\ny = x"], "python")
    assert r["sm_ted"] == pytest.approx(100 * (1 - 4 / 13))
    assert r["dm_jaccard"] == pytest.approx(100 * 4 / 6)
    assert r["dm"] == pytest.approx(100)  # codebleu's DM is recall: extra edges are free
    # module(expression_statement(assignment(identifier, integer))) against
    # module(return_statement(integer)): relabel 1, delete 2 -> TED 3 of 5 nodes.
    r = score(["x = 1"], ["return 1"], "python")
    assert r["sm_ted"] == pytest.approx(40)
    assert r["dm_jaccard"] == 0  # the prediction's 2 edges, none in the (edgeless) reference


@pytest.mark.parametrize("lang", LANGUAGES)
def test_paper_formulas_on_each_language(lang):
    reference, variant = SNIPPETS[lang]
    same = score([reference], [reference], lang)
    assert same["sm_ted"] == pytest.approx(100) and same["dm_jaccard"] == pytest.approx(100)
    near = score([variant], [reference], lang)
    assert 50 < near["sm_ted"] < 100  # one more binary expression in the variant
    empty = score(["", " \n"], [reference] * 2, lang)
    assert empty["sm_ted"] == 0 and empty["dm_jaccard"] == 0


def test_paper_formulas_on_unparsable_and_single_token_outputs():
    reference = SNIPPETS["python"][0]
    r = score(["def add(a, b:\n    total = a +\n", ")))((("], [reference] * 2, "python")
    assert 0 <= r["sm_ted"] < 60 and 0 <= r["dm_jaccard"] < 100
    r = score(["return"], [SNIPPETS["java"][0]], "java")
    assert 0 <= r["sm_ted"] < 10 and r["dm_jaccard"] == 0
    assert score(["x"], ["x"], "ruby")["sm_ted"] == pytest.approx(100)
    # neither side has an edge: dm_jaccard undefined, like dm
    assert score(["pass"], ["pass"], "python")["dm_jaccard"] is None
    assert score(["", ""], ["", ""], "go")["sm_ted"] == 100  # both empty
