"""HTTP teachers against a real OpenAI-compatible server on 127.0.0.1, faults included.

Every test talks real HTTP to `openai_server.FakeOpenAI`; nothing in pdc is mocked.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from typer.testing import CliRunner

from openai_server import FakeOpenAI
from pdc.cli import app

LANGS = ["python", "ruby", "javascript", "go", "java", "php"]


def problems(n: int, text: str = "Return the sum of the numbers in a list", langs=LANGS) -> list[dict]:
    return [{"id": f"p{i}", "lang": langs[i % len(langs)], "nl": f"{text} (case {i}).", "code": "",
             "split": "train"} for i in range(n)]


def jsonl(records) -> str:
    return "".join(json.dumps(r) + "\n" for r in records)


@pytest.fixture
def server():
    with FakeOpenAI(latency=0.0, retry_after="0.1") as s:
        yield s


def extract(server, records, *args, cache=None, env=None):
    """`pdc extract --teacher openai` against the server: (result, output records)."""
    cache_args = ["--cache", str(cache)] if cache else ["--no-cache"]
    result = CliRunner(env=env).invoke(app, ["extract", "--teacher", "openai", "--base-url", server.base_url,
                                             "--model", "fake-teacher", *cache_args, "--max-retries", "3",
                                             "--request-timeout", "2", *args], input=jsonl(records))
    return result, [json.loads(line) for line in result.stdout.splitlines()]


def fault(record: dict, name: str) -> dict:
    return dict(record, nl=record["nl"] + f" [[fault:{name}]]")


def test_every_record_annotated_in_input_order(server):
    records = problems(12)
    result, out = extract(server, records, "--concurrency", "4")
    assert result.exit_code == 0, result.stderr
    assert [o["id"] for o in out] == [r["id"] for r in records]
    for o, r in zip(out, records):
        assert o["status"] == "ok", o.get("error")
        assert o["teacher"] == "openai" and o["model"] == "fake-teacher"
        assert o["prompt_id"].startswith("paper-v1/") and f"/{r['lang']}/" in o["prompt_id"]
        assert len(o["pseudocode"]) >= 2 and o["teacher_code"].strip()
        assert o["usage"]["total_tokens"] > 0 and o["usage"]["cached"] is False
        assert o["teacher_config"]["base_url"] == server.base_url and o["teacher_config"]["temperature"] == 0
    assert server.requests == 12
    body = server.log[0]["body"]
    assert body["model"] == "fake-teacher" and body["temperature"] == 0
    assert body["messages"][0]["role"] == "system" and "Problem" in body["messages"][-1]["content"]
    assert all(entry["authorization"] is None for entry in server.log)  # a local endpoint gets no key
    assert "tokens" in result.stderr and "extract done: 12 records" in result.stderr


def test_output_keeps_input_order_when_answers_arrive_out_of_order(server):
    records = problems(6)
    records[0] = fault(records[0], "slow:0.6")
    records[2] = fault(records[2], "slow:0.3")
    result, out = extract(server, records, "--concurrency", "6")
    assert result.exit_code == 0, result.stderr
    assert [o["id"] for o in out] == [r["id"] for r in records]


@pytest.mark.parametrize("name", ["429", "500", "502", "503", "drop", "truncated", "html", "empty_choices",
                                  "no_choices", "not_json"])
def test_transient_faults_are_retried_until_the_answer_comes(server, name):
    records = problems(3)
    records[1] = fault(records[1], f"{name}:2")  # the first two requests for this record fail
    started = time.monotonic()
    result, out = extract(server, records)
    assert result.exit_code == 0, result.stderr
    assert [o["status"] for o in out] == ["ok", "ok", "ok"]
    assert server.requests == 5
    if name == "429":
        assert time.monotonic() - started >= 0.2  # Retry-After 0.1 s honoured twice


@pytest.mark.parametrize("name", ["stall", "trickle"])
def test_the_deadline_frees_a_slot_held_by_a_stalling_or_trickling_server(server, name):
    server.script([name])  # the first request stalls or trickles forever, the retry is answered
    records = problems(1)
    started = time.monotonic()
    result, out = extract(server, records, "--request-timeout", "0.6")
    elapsed = time.monotonic() - started
    assert result.exit_code == 0, result.stderr
    assert out[0]["status"] == "ok" and server.requests == 2
    assert elapsed < 5  # one deadline (0.6 s) plus a backoff, not the trickle's forever


def test_retries_run_out_into_a_retryable_failure_record(server):
    records = problems(3)
    records[1] = fault(records[1], "503")
    result, out = extract(server, records, "--max-retries", "2")
    assert result.exit_code == 3
    assert [o["status"] for o in out] == ["ok", "error", "ok"]
    error = out[1]["error"]
    assert error["type"] == "server_error" and error["retryable"] is True and "503" in error["message"]
    assert out[1]["pseudocode"] is None and out[1]["teacher_code"] is None
    assert server.requests == 2 + 3


@pytest.mark.parametrize("name,kind", [("400_context", "context_length"), ("422", "context_length"),
                                       ("null_content", "truncated"), ("length", "truncated")])
def test_per_record_failures_are_not_retried(server, name, kind):
    records = problems(2)
    records[0] = fault(records[0], name)
    result, out = extract(server, records)
    assert result.exit_code == 3
    assert out[0]["status"] == "error" and out[0]["error"]["type"] == kind
    assert out[0]["error"]["retryable"] is False
    assert out[1]["status"] == "ok"
    assert server.requests == 2


@pytest.mark.parametrize("name,words", [("401", "rejected the API key"), ("402", "no balance"),
                                        ("403", "refused access")])
def test_auth_and_balance_errors_stop_the_run_with_one_line(server, name, words):
    records = problems(20)
    records[3] = fault(records[3], name)
    result, out = extract(server, records, "--concurrency", "1")
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("Error: the teacher endpoint") and words in lines[-1]
    assert [o["id"] for o in out] == ["p0", "p1", "p2"]  # what finished before, in order, nothing after
    assert server.requests == 4


def test_the_breaker_stops_a_run_against_a_dead_server():
    with FakeOpenAI(default_fault="503") as dead:
        started = time.monotonic()
        result, out = extract(dead, problems(4), "--breaker-threshold", "3", "--breaker-cooldown", "0.1",
                              "--max-retries", "50", "--concurrency", "1")
    assert result.exit_code == 1
    assert "keeps failing" in result.stderr and "re-run the same command" in result.stderr
    assert out == []
    assert dead.requests < 20 and time.monotonic() - started < 30


def test_a_key_goes_only_where_it_was_named(server):
    env = {"MY_TEACHER_KEY": "sk-test-0123456789abcdef", "OPENAI_API_KEY": "sk-openai-should-not-leak"}
    result, out = extract(server, problems(2), "--api-key-env", "MY_TEACHER_KEY", env=env)
    assert result.exit_code == 0, result.stderr
    assert [e["authorization"] for e in server.log] == ["Bearer sk-test-0123456789abcdef"] * 2
    server.reset()
    # the gpt-4 preset pointed elsewhere keeps OPENAI_API_KEY to itself
    result = CliRunner(env=env).invoke(app, ["extract", "--teacher", "gpt-4", "--base-url", server.base_url,
                                             "--no-cache"], input=jsonl(problems(1)))
    assert result.exit_code == 0, result.stderr
    assert server.log[0]["authorization"] is None


def test_the_key_never_reaches_output_logs_or_cache(server, tmp_path):
    secret = "sk-secret-0123456789abcdefXYZ"
    cache = tmp_path / "cache.sqlite"
    records = problems(3)
    records[2] = fault(records[2], "401")
    result, out = extract(server, records, "--api-key-env", "K", "--concurrency", "1", cache=cache,
                          env={"K": secret})
    assert result.exit_code == 1
    assert secret not in result.stdout and secret not in result.stderr
    for path in tmp_path.iterdir():  # the SQLite file and its WAL
        assert secret.encode() not in path.read_bytes()


def test_missing_key_variable_is_a_usage_error(server):
    result, _ = extract(server, problems(1), "--api-key-env", "NOT_SET_ANYWHERE_42", env={"NOT_SET_ANYWHERE_42": None})
    assert result.exit_code == 2 and "NOT_SET_ANYWHERE_42 is not set" in result.stderr


def test_a_rerun_is_served_from_the_cache(server, tmp_path):
    cache = tmp_path / "cache.sqlite"
    records = problems(8)
    first, out1 = extract(server, records, cache=cache)
    assert first.exit_code == 0 and server.requests == 8
    second, out2 = extract(server, records, cache=cache)
    assert second.exit_code == 0 and server.requests == 8  # no request repeated
    assert all(o["usage"]["cached"] for o in out2)
    strip = [{k: v for k, v in o.items() if k != "usage"} for o in out1]
    assert strip == [{k: v for k, v in o.items() if k != "usage"} for o in out2]
    # a different sampling parameter is a different request
    third, _ = extract(server, records[:1], "--max-tokens", "77", cache=cache)
    assert third.exit_code == 0 and server.requests == 9


def test_retryable_failures_are_asked_again_on_a_rerun(server, tmp_path):
    cache = tmp_path / "cache.sqlite"
    records = problems(2)
    records[1] = fault(records[1], "503:2")
    first, out = extract(server, records, "--max-retries", "1", cache=cache)
    assert first.exit_code == 3 and out[1]["error"]["retryable"] is True
    second, out = extract(server, records, cache=cache)
    assert second.exit_code == 0 and out[1]["status"] == "ok"
    assert server.requests == 2 + 1 + 0 + 1  # p0, p1 x2 (failed); rerun: p0 cached, p1 once


def test_shards_partition_the_input(server):
    records = problems(40)
    ids = []
    for i in range(3):
        result, out = extract(server, records, "--shard", f"{i}/3")
        assert result.exit_code == 0, result.stderr
        ids.append([o["id"] for o in out])
    assert sorted(sum(ids, [])) == sorted(r["id"] for r in records)
    assert all(ids) and all(i == sorted(i, key=lambda x: int(x[1:])) for i in ids)  # input order kept
    result, _ = extract(server, records, "--shard", "3/3")
    assert result.exit_code == 2 and "--shard" in result.stderr


def test_one_off_problem_prints_jsonl_when_piped(server):
    result = CliRunner().invoke(app, ["extract", "--teacher", "openai", "--base-url", server.base_url, "--model",
                                      "fake-teacher", "--no-cache", "Flatten a nested list."])
    assert result.exit_code == 0, result.stderr
    record = json.loads(result.stdout)
    assert record["nl"] == "Flatten a nested list." and record["status"] == "ok"


def test_kill_9_then_rerun_finishes_exactly_once(tmp_path):
    """A real `pdc extract` process killed mid-run, then the same command again."""
    n, concurrency = 300, 8
    src = tmp_path / "problems.jsonl"
    src.write_text(jsonl(problems(n)))
    count_file = tmp_path / "count"
    server = subprocess.Popen([sys.executable, os.path.join(os.path.dirname(__file__), "openai_server.py"),
                               "--latency", "0.02", "--count-file", str(count_file)],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        base_url = server.stdout.readline().strip()
        cmd = [sys.executable, "-m", "pdc", "extract", "--teacher", "openai", "--base-url", base_url,
               "--model", "fake-teacher", "--cache", str(tmp_path / "cache.sqlite"),
               "--concurrency", str(concurrency), str(src)]
        out1 = tmp_path / "out1.jsonl"
        with open(out1, "w") as fh:
            proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.DEVNULL)
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and out1.read_text().count("\n") < n // 3:
                time.sleep(0.02)
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        written = out1.read_text().count("\n")
        assert 0 < written < n, "the first run should die midway"
        sent_first = int(count_file.read_text())
        out2 = tmp_path / "out2.jsonl"
        with open(out2, "w") as fh:
            assert subprocess.run(cmd, stdout=fh, stderr=subprocess.PIPE, timeout=300).returncode == 0
        records = [json.loads(line) for line in out2.read_text().splitlines()]
        assert [r["id"] for r in records] == [f"p{i}" for i in range(n)]  # every id once, in input order
        assert all(r["status"] == "ok" for r in records)
        sent_total = int(count_file.read_text())
        # the re-run asked only for what the first run had not received: at most the
        # requests in flight at the kill were lost and sent again
        assert sent_total - n <= concurrency
        assert sum(r["usage"]["cached"] for r in records) >= sent_first - concurrency
    finally:
        server.terminate()
        server.wait(timeout=10)


# --- politeness and endpoint rules, unit by unit ------------------------------------------------

import asyncio  # noqa: E402
import email.utils  # noqa: E402

from pdc.errors import PdcError  # noqa: E402
from pdc.teachers import http  # noqa: E402


def test_rpm_spaces_request_starts(server):
    started = time.monotonic()
    result, out = extract(server, problems(4), "--rpm", "300", "--concurrency", "4")  # one start per 0.2 s
    assert result.exit_code == 0, result.stderr
    assert time.monotonic() - started >= 0.6 and len(out) == 4


def test_tpm_bucket_waits_for_tokens_and_takes_back_what_was_not_used():
    async def scenario():
        budget = http.Budget(rpm=None, tpm=6000)  # 100 tokens a second
        t0 = time.monotonic()
        await budget.acquire(6000)          # the whole bucket
        await budget.acquire(50)            # must wait about 0.5 s for the refill
        waited = time.monotonic() - t0
        budget.settle(6000, 100)            # the first request used only 100 tokens
        t1 = time.monotonic()
        await budget.acquire(3000)          # the refund covers it
        return waited, time.monotonic() - t1

    waited, immediate = asyncio.run(scenario())
    assert 0.4 <= waited < 2 and immediate < 0.1


def test_retry_after_pauses_every_request(server):
    server.retry_after = "0.5"
    server.script(["429"])  # the first request is told to wait; the others must wait too
    started = time.monotonic()
    result, out = extract(server, problems(3), "--concurrency", "1")
    assert result.exit_code == 0, result.stderr
    assert time.monotonic() - started >= 0.5 and server.requests == 4


def test_breaker_opens_probes_and_closes():
    async def scenario():
        breaker = http.Breaker(threshold=2, cooldown=0.2, trips=3)
        breaker.failure("503")
        await breaker.admit()                     # one failure: still closed
        breaker.failure("503")                    # threshold: open for 0.2 s
        t0 = time.monotonic()
        await breaker.admit()                     # waits, then is the probe
        waited = time.monotonic() - t0
        assert breaker.probing
        breaker.failure("503")                    # the probe failed: open again, 0.4 s
        assert breaker.trips == 2 and breaker.open_until is not None
        await breaker.admit()
        breaker.success()                         # the probe succeeded: closed
        return waited, breaker.open_until, breaker.trips

    waited, open_until, trips = asyncio.run(scenario())
    assert 0.15 <= waited < 1 and open_until is None and trips == 0


def test_retry_after_header_forms():
    assert http.retry_after_seconds("2") == 2.0
    assert http.retry_after_seconds("0.25") == 0.25
    assert http.retry_after_seconds(None) is None and http.retry_after_seconds("soon") is None
    future = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 25 <= http.retry_after_seconds(future) <= 31


def test_endpoints_and_where_keys_go():
    env = {"OPENAI_API_KEY": "sk-openai-123456789", "DEEPSEEK_API_KEY": "sk-ds-123456789", "MINE": "k-1"}
    gpt4 = http.resolve_endpoint("gpt-4", environ=env)
    assert (gpt4.base_url, gpt4.model, gpt4.key_env, gpt4.api_key) == (
        "https://api.openai.com/v1", "gpt-4", "OPENAI_API_KEY", "sk-openai-123456789")
    assert "sk-openai" not in repr(gpt4)
    moved = http.resolve_endpoint("gpt-4", base_url="http://127.0.0.1:8000/v1", environ=env)
    assert moved.api_key is None and moved.key_env is None
    assert http.resolve_endpoint("deepseek", environ=env).api_key == "sk-ds-123456789"
    local = http.resolve_endpoint("codellama-7b", environ=env)
    assert local.api_key is None and local.base_url.startswith("http://127.0.0.1")
    assert http.resolve_endpoint("codeqwen-7b", api_key_env="MINE", environ=env).api_key == "k-1"
    with pytest.raises(PdcError, match="--base-url URL and --model NAME"):
        http.resolve_endpoint("openai", environ=env)
    with pytest.raises(PdcError, match="http"):
        http.resolve_endpoint("openai", base_url="ftp://x", model="m", environ=env)
    with pytest.raises(PdcError, match="OPENAI_API_KEY is not set"):
        http.resolve_endpoint("gpt-4", environ={})


def test_redaction_of_echoed_keys():
    assert http.redact("Incorrect API key provided: sk-abc123XYZ789.", None) == \
        "Incorrect API key provided: [redacted]."
    assert http.redact("token my-very-secret was bad", "my-very-secret") == "token [redacted] was bad"
