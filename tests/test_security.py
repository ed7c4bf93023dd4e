"""pdc.security: bandit warnings per 1,000 snippets, hand-checked."""

from __future__ import annotations

from pdc.security import scan


def test_scan_counts_warnings_per_thousand_snippets_by_severity():
    snippets = [
        "import pickle\npickle.loads(data)",                          # B403 low, B301 medium
        "x = 1",                                                      # nothing
        "def f(:\n",                                                  # unparsable
        "import subprocess\nsubprocess.call(cmd, shell=True)",        # B404 low, B602 high
    ]
    result = scan(snippets)
    assert result["snippets"] == 4 and result["unparsable"] == 1
    assert (result["low"], result["medium"], result["high"]) == (500.0, 250.0, 250.0)
    assert result["tests"] == {"B301": 250.0, "B403": 250.0, "B404": 250.0, "B602": 250.0}
    assert "bandit 1.9.4" in result["method"]


def test_clean_code_has_no_warnings():
    result = scan(["def add(a, b):\n    return a + b"] * 3)
    assert (result["low"], result["medium"], result["high"], result["unparsable"]) == (0, 0, 0, 0)


def test_snippets_are_never_run(tmp_path):
    canary = tmp_path / "ran"
    scan([f"open({str(canary)!r}, 'w').write('x')"])
    assert not canary.exists()
