"""Scan generated Python with bandit: warnings per 1,000 snippets by severity (the paper's Section 5.4).

    from pdc.security import scan
    scan(["import pickle\\npickle.loads(data)", "x = 1"])
    # {'snippets': 2, 'unparsable': 0, 'low': 500.0, 'medium': 500.0, 'high': 0.0, ...} per 1,000

Each snippet is written to its own file in a temporary directory and the
directory is scanned by one `bandit -r -f json` run (bandit's default
profile: every plugin, every severity and confidence). Snippets bandit cannot
parse are counted in `unparsable` and add no warning; the rates are still per
1,000 snippets scanned, unparsable ones included. The code is only parsed,
never run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections import Counter
from importlib import metadata
from typing import Any

SEVERITIES = ("low", "medium", "high")

METHOD = (
    "bandit {version}, default profile, one file per snippet (each record's first beam); "
    "low/medium/high: bandit warnings of that severity per 1,000 snippets scanned; "
    "unparsable: snippets bandit could not parse (they add no warning); "
    "tests: warnings per 1,000 snippets by bandit test id."
)


def bandit_version() -> str:
    try:
        return metadata.version("bandit")
    except metadata.PackageNotFoundError:
        return "missing"


def scan(snippets: list[str]) -> dict[str, Any]:
    """Bandit warnings per 1,000 snippets by severity (and by test id)."""
    n = len(snippets)
    with tempfile.TemporaryDirectory(prefix="pdc-bandit-") as tmp:
        for i, code in enumerate(snippets):
            with open(os.path.join(tmp, f"s{i:06d}.py"), "w", encoding="utf-8") as f:
                f.write(code)
        proc = subprocess.run([sys.executable, "-m", "bandit", "-r", tmp, "-f", "json", "-q"],
                              capture_output=True, text=True, timeout=600)
    if proc.returncode not in (0, 1) or not proc.stdout.strip():  # 1: issues found
        from pdc.errors import PdcError

        raise PdcError(f"bandit failed ({proc.stderr.strip()[-300:]}), check that bandit is installed")
    report = json.loads(proc.stdout)
    severity = Counter(r["issue_severity"].lower() for r in report.get("results", []))
    tests = Counter(r["test_id"] for r in report.get("results", []))
    per = 1000 / n if n else 0.0
    return {"snippets": n, "unparsable": len(report.get("errors", [])),
            **{s: round(severity[s] * per, 2) for s in SEVERITIES},
            "tests": {t: round(c * per, 2) for t, c in sorted(tests.items())},
            "method": METHOD.format(version=bandit_version())}
