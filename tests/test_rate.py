"""pdc rate: blind rating sheets, aggregation with Krippendorff's alpha, the HTML page in headless Chromium."""

from __future__ import annotations

import csv
import io
import json
import os
import select
import shutil
import subprocess
import time

import pytest
from typer.testing import CliRunner

from pdc import rate as core
from pdc.cli import app
from pdc.errors import PdcError
from pdc.jsonl import Line

N = None
# Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", the example with
# missing values: 4 observers, 12 units; published alpha nominal .743, ordinal .815, interval .849.
KRIPPENDORFF_2011 = list(zip(
    [1, 2, 3, 3, 2, 1, 4, 1, 2, N, N, N],
    [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, N, 3],
    [N, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, N],
    [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, N],
))


@pytest.mark.parametrize("metric, published", [("nominal", 0.743), ("ordinal", 0.815), ("interval", 0.849)])
def test_alpha_matches_krippendorffs_published_example(metric, published):
    assert round(core.krippendorff_alpha(KRIPPENDORFF_2011, metric), 3) == published


def test_alpha_hand_computed():
    # units (1,1), (2,2), (1,2): coincidences o11 = 2, o22 = 2, o12 = o21 = 1; n1 = n2 = 3, n = 6.
    # alpha = 1 - (n-1) * (o12 + o21) * d / (n1 n2 + n2 n1) d = 1 - 5 * 2 / 18 = 4/9 (d = 1 for both metrics)
    assert core.krippendorff_alpha([(1, 1), (2, 2), (1, 2)], "nominal") == pytest.approx(4 / 9)
    assert core.krippendorff_alpha([(1, 1), (2, 2), (1, 2)], "interval") == pytest.approx(4 / 9)
    # interval distance grows with the gap: units (1,1), (3,3), (1,3): o13 = o31 = 1, d = 4, same 4/9;
    # with a middle value the disagreement (1,3) costs more than (1,2): (1,1),(2,2),(3,3),(1,3)
    # n = 8, n1 = n3 = 3, n2 = 2; Do = 2*4 = 8; De = 2*(3*2*1 + 3*3*4 + 2*3*1) = 96; alpha = 1 - 7*8/96
    assert core.krippendorff_alpha([(1, 1), (2, 2), (3, 3), (1, 3)], "interval") == pytest.approx(1 - 56 / 96)
    assert core.krippendorff_alpha([(1, 1), (2, 2)], "interval") == 1.0
    assert core.krippendorff_alpha([(3, 3), (3,)], "interval") is None  # no variation
    assert core.krippendorff_alpha([(3,), (4,)], "interval") is None  # nothing pairable
    with pytest.raises(PdcError, match="unknown agreement metric"):
        core.krippendorff_alpha([(1, 2)], "ratio")


def eval_lines(run: str, ids: list[str], code: str = "return x") -> list[Line]:
    lines = [Line(f"{run}:{i}", {"id": pid, "lang": "python", "nl": f"Problem {pid}.", "code": "def f(x):\n    return x",
                                 "predictions": [f"def f(x):  # {run} {pid}\n    {code}", "other beam"]})
             for i, pid in enumerate(ids, 1)]
    return lines + [Line(f"{run}:{len(ids) + 1}", {"summary": True, "run": run, "top1": {}, "topk": {}})]


def two_runs(n_ids=6):
    ids = [f"p{i}" for i in range(n_ids)]
    return [core.read_run(eval_lines("baseline", ids), "a"), core.read_run(eval_lines("distilled", ids[1:] + ["x"]), "b")]


def test_sheet_is_blind_deterministic_and_keyed():
    runs = two_runs()
    rows, key = core.make_sheet(runs, n=3, seed=7)
    assert len(rows) == 6 and [r["item"] for r in rows] == [f"item-{i:04d}" for i in range(1, 7)]
    assert rows == core.make_sheet(runs, n=3, seed=7)[0]
    assert rows != core.make_sheet(runs, n=3, seed=8)[0]
    problems = {v["id"] for v in key["items"].values()}
    assert len(problems) == 3 and problems <= {"p1", "p2", "p3", "p4", "p5"}  # only ids every run has
    assert key["problems_available"] == 5
    for row in rows:
        truth = key["items"][row["item"]]
        assert row["code"].startswith(f"def f(x):  # {truth['run']} {truth['id']}")  # the top-1 beam
        assert "baseline" not in row["item"] + row["problem"] and set(row) == set(core.SHEET_COLUMNS)
    assert all(row[c] == "" for row in rows for c in core.CRITERIA)
    with pytest.raises(PdcError, match="run 'baseline' given twice"):
        core.make_sheet([runs[0], runs[0]], 3)
    with pytest.raises(PdcError, match="share no problem id"):
        core.make_sheet([runs[0], core.read_run(eval_lines("z", ["q"]), "z")], 3)


def fill(sheet_text: str, scores: dict[str, tuple], rater: str) -> str:
    rows = list(csv.DictReader(io.StringIO(sheet_text)))
    out = io.StringIO()
    writer = csv.DictWriter(out, core.SHEET_COLUMNS + ["rater"], lineterminator="\n")
    writer.writeheader()
    for row in rows:
        row.update(zip(core.CRITERIA, (str(v) if v is not None else "" for v in scores.get(row["item"], (N, N, N)))))
        writer.writerow({**row, "rater": rater})
    return out.getvalue()


def test_cli_sheet_then_aggregate_then_table5(tmp_path):
    ids = [f"p{i}" for i in range(4)]
    for run in ("baseline", "distilled"):
        (tmp_path / f"eval-{run}.jsonl").write_text("".join(json.dumps(l.record) + "\n" for l in eval_lines(run, ids)))
    out = tmp_path / "rating"
    result = CliRunner().invoke(app, ["rate", "sheet", str(tmp_path / "eval-baseline.jsonl"),
                                      str(tmp_path / "eval-distilled.jsonl"), "--n", "2", "--out", str(out)])
    assert result.exit_code == 0, result.output
    made = json.loads(result.stdout)
    assert made["items"] == 4 and made["runs"] == ["baseline", "distilled"]
    assert sorted(os.listdir(out)) == ["key.json", "sheet.csv", "sheet.html"]
    key = json.loads((out / "key.json").read_text())
    sheet = (out / "sheet.csv").read_text()
    by_run = {run: sorted(i for i, v in key["items"].items() if v["run"] == run) for run in key["runs"]}
    # alice and bob: distilled 5/4/4 and 4/4/5, baseline 2/3/3 and 3/2/-
    alice = {**{i: (5, 4, 4) for i in by_run["distilled"]}, **{i: (2, 3, 3) for i in by_run["baseline"]}}
    bob = {**{i: (4, 4, 5) for i in by_run["distilled"]}, **{i: (3, 2, None) for i in by_run["baseline"]}}
    (tmp_path / "a.csv").write_text(fill(sheet, alice, "alice"))
    (tmp_path / "b.csv").write_text(fill(sheet, bob, ""))  # no rater column value: the file name
    result = CliRunner().invoke(app, ["rate", "aggregate", "--key", str(out / "key.json"),
                                      str(tmp_path / "a.csv"), str(tmp_path / "b.csv")])
    assert result.exit_code == 0, result.output
    records = [json.loads(x) for x in result.stdout.splitlines()]
    base, dist, agree = records
    assert base == {"run": "baseline", "items": 2, "correctness": 2.5, "completeness": 2.5, "fluency": 3.0,
                    "ratings": 4, "sd": {"correctness": pytest.approx(0.57735, abs=1e-4),
                                         "completeness": pytest.approx(0.57735, abs=1e-4), "fluency": 0.0}}
    assert (dist["correctness"], dist["completeness"], dist["fluency"]) == (4.5, 4.0, 4.5)
    assert agree["raters"] == 2 and agree["rater_names"] == ["alice", "b"]
    assert agree["agreement"]["method"] == "krippendorff-alpha/interval"
    units = [[alice[i][0], bob[i][0]] for i in key["items"]]
    assert agree["agreement"]["correctness"] == round(core.krippendorff_alpha(units), 4)
    # completeness by hand: units (4,4) (4,4) (3,2) (3,2): o44 = 4, o32 = o23 = 2; n4 = 4, n3 = n2 = 2, n = 8;
    # Do = 2*1 + 2*1 = 4; De = 2*(4*2*1 + 4*2*4 + 2*2*1) = 88; alpha = 1 - 7 * 4 / 88
    assert agree["agreement"]["completeness"] == round(1 - 28 / 88, 4)
    table = CliRunner().invoke(app, ["table", "--layout", "table5"], input=result.stdout)
    assert table.exit_code == 0, table.output
    assert "| baseline  | 2     | 4       | 2.50" in table.stdout and "krippendorff-alpha/interval, 2 raters" in table.stdout


def test_bad_sheets_name_file_line_and_field(tmp_path):
    rows, key = core.make_sheet(two_runs(), n=2)
    sheet = core.sheet_csv(rows)
    first = rows[0]["item"]
    bad = fill(sheet, {first: (6, 1, 1)}, "r")
    with pytest.raises(Exception, match=r"x.csv:2, field 'correctness': '6' is not a whole number from 1 to 5"):
        core.read_filled("x.csv", key, bad)
    with pytest.raises(Exception, match=r"x.csv:2, field 'fluency': '2.5'"):
        core.read_filled("x.csv", key, fill(sheet, {first: (1, 1, 2.5)}, "r"))
    with pytest.raises(Exception, match=r"x.csv:5, field 'item': 'item-9999' is not in the key"):
        core.read_filled("x.csv", key, sheet.replace(rows[1]["item"], "item-9999"))
    with pytest.raises(Exception, match=r"x.csv:1, field 'fluency': column missing"):
        core.read_filled("x.csv", key, "item,correctness,completeness\n")
    one = core.read_filled("x.csv", key, fill(sheet, {}, "r"))
    with pytest.raises(PdcError, match="rater 'r' appears in two sheets"):
        core.aggregate([one, one], key)
    result = CliRunner().invoke(app, ["rate", "aggregate", "x.csv"])
    assert result.exit_code == 1 and "needs --key" in result.stderr


# ---------------------------------------------------------------- the HTML page in headless Chromium

CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)


class Chromium:
    """Headless Chromium driven over the DevTools protocol on a pipe (--remote-debugging-pipe: fd 3 in, fd 4 out)."""

    def __init__(self, profile: str):
        to_r, self.w = os.pipe()
        self.r, from_w = os.pipe()

        def child():
            os.dup2(to_r, 3)
            os.dup2(from_w, 4)

        flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 f"--user-data-dir={profile}", "--remote-debugging-pipe", "about:blank"]
        self.proc = subprocess.Popen([CHROMIUM, *flags], preexec_fn=child, close_fds=False,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_r)
        os.close(from_w)
        self.buf, self.next_id = b"", 0

    def send(self, method: str, params: dict | None = None, session: str | None = None, timeout: float = 30) -> dict:
        self.next_id += 1
        message = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self.w, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            while b"\0" not in self.buf:
                ready, _, _ = select.select([self.r], [], [], max(0.0, deadline - time.monotonic()))
                if not ready:
                    raise TimeoutError(f"no answer to {method}")
                chunk = os.read(self.r, 1 << 16)
                if not chunk:
                    raise RuntimeError("chromium closed the pipe")
                self.buf += chunk
            raw, _, self.buf = self.buf.partition(b"\0")
            reply = json.loads(raw)
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]

    def evaluate(self, session: str, expression: str):
        result = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                                "awaitPromise": True}, session)
        if "exceptionDetails" in result:
            raise RuntimeError(f"page error: {result['exceptionDetails']}")
        return result["result"].get("value")

    def close(self) -> None:
        try:
            self.send("Browser.close", timeout=5)
        except Exception:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self.w)
        os.close(self.r)


@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium not installed (Debian: apt-get install -y chromium)")
def test_html_page_fills_scores_and_downloads_the_csv(tmp_path):
    ids = ["p0", "p1", "p2"]
    hostile = 'print("</script><b>x</b>", a, "<!--")'  # must stay text, not end the data block
    runs = [core.read_run(eval_lines("baseline", ids, hostile), "a"), core.read_run(eval_lines("distilled", ids), "b")]
    rows, key = core.make_sheet(runs, n=3, seed=1)
    made = core.write_sheet(rows, key, str(tmp_path / "rating"))
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    browser = Chromium(str(tmp_path / "profile"))
    try:
        browser.send("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
        target = browser.send("Target.createTarget", {"url": "file://" + made["files"]["html"]})["targetId"]
        session = browser.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        deadline = time.monotonic() + 30
        while browser.evaluate(session, "document.querySelectorAll('.item').length") != len(rows):
            assert time.monotonic() < deadline, "the page did not render its items"
            time.sleep(0.2)
        shown = browser.evaluate(session, "Array.from(document.querySelectorAll('pre.code')).map(e => e.textContent)")
        assert shown == [r["code"] for r in rows]
        assert browser.evaluate(session, "document.querySelectorAll('pre b, .item b').length") == 0  # code stays text
        assert browser.evaluate(session, "document.getElementById('progress').textContent") == "0 / 6 items rated"
        first, second = rows[0]["item"], rows[1]["item"]
        browser.evaluate(session, f"""(() => {{
            const set = (item, name, value) => {{
                const e = document.querySelector('[data-item="' + item + '"][name="' + name + '"]');
                e.value = value; e.dispatchEvent(new Event(name === "comment" ? "input" : "change", {{bubbles: true}}));
            }};
            document.getElementById("rater").value = "carol";
            set("{first}", "correctness", "4"); set("{first}", "completeness", "5"); set("{first}", "fluency", "3");
            set("{first}", "comment", 'has "quotes", commas\\nand a newline');
            set("{second}", "fluency", "2");
            return true;
        }})()""")
        assert browser.evaluate(session, "document.getElementById('progress').textContent") == "1 / 6 items rated"
        browser.evaluate(session, "document.getElementById('download').click(); true")
        deadline = time.monotonic() + 30
        while not [p for p in downloads.iterdir() if p.suffix == ".csv"]:
            assert time.monotonic() < deadline, f"no CSV downloaded: {list(downloads.iterdir())}"
            time.sleep(0.2)
        # the CSV the page saved in localStorage survives a reload
        browser.send("Page.reload", {}, session)
        time.sleep(0.5)
        deadline = time.monotonic() + 30
        while browser.evaluate(session, "document.querySelectorAll('.item').length") != len(rows):
            assert time.monotonic() < deadline
            time.sleep(0.2)
        kept = browser.evaluate(session, f"document.querySelector('[data-item=\"{first}\"][name=\"fluency\"]').value")
        assert kept == "3"
    finally:
        browser.close()
    path = downloads / "ratings-carol.csv"
    assert path.is_file(), list(downloads.iterdir())
    time.sleep(0.2)
    parsed = list(csv.DictReader(io.StringIO(path.read_text())))
    assert list(parsed[0]) == core.SHEET_COLUMNS + ["rater"]
    assert [r["item"] for r in parsed] == [r["item"] for r in rows]
    assert [r["code"] for r in parsed] == [r["code"] for r in rows]
    assert parsed[0]["comment"] == 'has "quotes", commas\nand a newline'
    rater, scores = core.read_filled(str(path), key)  # what `pdc rate aggregate` reads
    assert rater == "carol"
    assert scores[first] == {"correctness": 4, "completeness": 5, "fluency": 3}
    assert scores[second] == {"fluency": 2}
    assert all(scores[r["item"]] == {} for r in rows[2:])
