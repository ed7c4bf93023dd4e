"""make bench-extract: pdc extract's throughput against a local OpenAI-compatible server.

2,000 records, a server answering every request after a fixed 100 ms, `pdc
extract --concurrency 32` as a real process. The ideal is concurrency /
latency = 320 records/s; the ratio measured / ideal is the figure (target
>= 0.8). Then the same command again: served from the response cache, it
should send 0 requests.

    python bench/extract_bench.py [--records 2000] [--latency 0.1] [--concurrency 32]

Prints one JSON line on stdout and a readable summary on stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
from openai_server import FakeOpenAI  # noqa: E402


def run(cmd: list[str], stdin_path: str, out_path: str) -> float:
    with open(stdin_path) as src, open(out_path, "w") as out:
        start = time.perf_counter()
        proc = subprocess.run(cmd, stdin=src, stdout=out, stderr=subprocess.PIPE, text=True)
        elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"pdc extract failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=2000)
    ap.add_argument("--latency", type=float, default=0.1)
    ap.add_argument("--concurrency", type=int, default=32)
    args = ap.parse_args()
    langs = ["python", "ruby", "javascript", "go", "java", "php"]
    with tempfile.TemporaryDirectory() as tmp, FakeOpenAI(latency=args.latency) as server:
        src = os.path.join(tmp, "problems.jsonl")
        with open(src, "w") as fh:
            for i in range(args.records):
                fh.write(json.dumps({"id": f"bench-{i}", "lang": langs[i % 6], "split": "train", "code": "",
                                     "nl": f"Return the {i}-th element of a list, or a default value."}) + "\n")
        cmd = [sys.executable, "-m", "pdc", "extract", "--teacher", "openai", "--base-url", server.base_url,
               "--model", "fake-teacher", "--concurrency", str(args.concurrency),
               "--cache", os.path.join(tmp, "cache.sqlite")]
        empty = os.path.join(tmp, "empty.jsonl")
        open(empty, "w").close()
        startup = run(cmd, empty, os.path.join(tmp, "none.jsonl"))  # interpreter + imports, no records
        first = run(cmd, src, os.path.join(tmp, "out1.jsonl"))
        sent_first = server.requests
        second = run(cmd, src, os.path.join(tmp, "out2.jsonl"))
        sent_second = server.requests - sent_first
        with open(os.path.join(tmp, "out1.jsonl")) as a, open(os.path.join(tmp, "out2.jsonl")) as b:
            rows1, rows2 = a.read().splitlines(), b.read().splitlines()
    ideal = args.concurrency / args.latency
    n = args.records
    result = {
        "records": n, "latency_s": args.latency, "concurrency": args.concurrency, "ideal_rps": ideal,
        "startup_s": round(startup, 3), "first_run_s": round(first, 3),
        "first_rps": round(n / first, 1), "ratio": round(n / first / ideal, 3),
        "first_rps_excl_startup": round(n / (first - startup), 1),
        "ratio_excl_startup": round(n / (first - startup) / ideal, 3),
        "first_requests": sent_first, "rerun_s": round(second, 3), "rerun_rps": round(n / second, 1),
        "rerun_requests": sent_second, "rows": [len(rows1), len(rows2)],
    }
    print(json.dumps(result))
    print(f"first run: {n} records in {first:.2f} s = {n / first:.0f} records/s, ideal {ideal:.0f}/s, "
          f"ratio {result['ratio']:.2f} (excluding {startup:.2f} s process start-up: "
          f"{result['ratio_excl_startup']:.2f}); {sent_first} requests", file=sys.stderr)
    print(f"re-run from cache: {second:.2f} s = {n / second:.0f} records/s, {sent_second} requests sent",
          file=sys.stderr)


if __name__ == "__main__":
    main()
