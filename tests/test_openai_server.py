"""The fake OpenAI server speaks real HTTP/1.1 and injects each fault as documented."""

from __future__ import annotations

import ast
import asyncio
import http.client
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from openai_server import FakeOpenAI

from pdc.treesitter import parses

SERVER_SCRIPT = Path(__file__).with_name("openai_server.py")


@pytest.fixture
def server():
    with FakeOpenAI(latency=0.0) as s:
        yield s


def chat(content: str, model: str = "teacher-x") -> dict:
    return {"model": model, "temperature": 0.0, "max_tokens": 256,
            "messages": [{"role": "system", "content": "You are a teacher."},
                         {"role": "user", "content": content}]}


def post(server: FakeOpenAI, content: str, **kwargs) -> httpx.Response:
    return httpx.post(f"{server.base_url}/chat/completions", json=chat(content), **kwargs)


def code_block(text: str) -> tuple[str, str]:
    """(language, code) of the one fenced block in a teacher answer."""
    fence = text.index("```")
    lang, _, rest = text[fence + 3:].partition("\n")
    return lang, rest[: rest.index("```")]


# ---------------------------------------------------------------- normal answers

def test_normal_completion_has_the_openai_shape(server):
    r = post(server, "Write a function that doubles x.\nLanguage: python")
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    reply = r.json()
    assert reply["object"] == "chat.completion"
    assert reply["model"] == "teacher-x"
    assert isinstance(reply["id"], str) and isinstance(reply["created"], int)
    [choice] = reply["choices"]
    assert choice["index"] == 0 and choice["finish_reason"] == "stop"
    assert choice["message"]["role"] == "assistant"
    text = choice["message"]["content"]
    assert text.startswith("Pseudocode:\n1. Define a function `solve` that takes `x`.\n2. ")
    assert "\n3. Return the result.\nCode:\n```python\n" in text and text.endswith("```")
    ast.parse(code_block(text)[1])
    usage = reply["usage"]
    assert usage["completion_tokens"] == len(text.split())
    assert usage["prompt_tokens"] == len("You are a teacher.".split()) + 8
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


@pytest.mark.parametrize("lang", ["python", "ruby", "javascript", "go", "java", "php"])
def test_code_is_valid_in_the_language_asked_for(server, lang):
    text = post(server, f"Reverse a list.\nLanguage: {lang}").json()["choices"][0]["message"]["content"]
    block_lang, code = code_block(text)
    assert block_lang == lang
    assert parses(code, lang), code


def test_answers_are_deterministic_and_differ_by_problem(server):
    def answer(problem):
        return post(server, problem).json()["choices"][0]["message"]["content"]

    assert answer("problem A") == answer("problem A")
    assert answer("problem A") != answer("problem B")


def test_responder_overrides_the_answer():
    with FakeOpenAI(responder=lambda body: f"echo {len(body['messages'])}") as s:
        assert post(s, "hi").json()["choices"][0]["message"]["content"] == "echo 2"


def test_models_endpoint(server):
    r = httpx.get(f"{server.base_url}/models")
    assert r.status_code == 200
    assert r.json() == {"object": "list", "data": [
        {"id": "fake-teacher", "object": "model", "created": 0, "owned_by": "pdc-tests"}]}


def test_keep_alive_serves_several_requests_on_one_connection(server):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    for i in range(3):
        conn.request("POST", "/v1/chat/completions", body=json.dumps(chat(f"p{i}")),
                     headers={"Content-Type": "application/json"})
        r = conn.getresponse()
        assert r.status == 200 and json.loads(r.read())["object"] == "chat.completion"
    conn.close()
    assert server.requests == 3


def test_bad_json_body_is_a_counted_400(server):
    r = httpx.post(f"{server.base_url}/chat/completions", content=b"{not json",
                   headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and "error" in r.json()
    assert server.log[0]["status"] == 400 and server.log[0]["body"] is None


# ---------------------------------------------------------------- error statuses

@pytest.mark.parametrize("fault,status,code", [
    ("429", 429, "rate_limit_exceeded"),
    ("500", 500, None),
    ("502", 502, "bad_gateway"),
    ("503", 503, "service_unavailable"),
    ("400_context", 400, "context_length_exceeded"),
    ("401", 401, "invalid_api_key"),
    ("402", 402, "invalid_request_error"),
    ("403", 403, "unsupported_country_region_territory"),
])
def test_error_faults_answer_with_openai_error_bodies(server, fault, status, code):
    r = post(server, f"x [[fault:{fault}]]")
    assert r.status_code == status
    error = r.json()["error"]
    assert set(error) >= {"message", "type", "code"} and error["code"] == code
    assert ("retry-after" in r.headers) == (fault == "429")
    assert server.log[0]["fault"] == fault and server.log[0]["status"] == status


def test_402_is_deepseeks_insufficient_balance(server):
    assert post(server, "[[fault:402]]").json()["error"]["message"] == "Insufficient Balance"


def test_422_is_tgis_validation_error(server):
    r = post(server, "[[fault:422]]")
    assert r.status_code == 422
    assert r.json()["error_type"] == "validation"
    assert r.json()["error"].startswith("Input validation error")


def test_retry_after_defaults_to_1_and_can_be_fractional(server):
    assert post(server, "[[fault:429]]").headers["retry-after"] == "1"
    with FakeOpenAI(retry_after="0.2") as s:
        assert post(s, "[[fault:429]]").headers["retry-after"] == "0.2"


# ---------------------------------------------------------------- connection faults

def test_drop_closes_without_a_response(server):
    with pytest.raises(httpx.RemoteProtocolError):
        post(server, "[[fault:drop]]")
    assert server.log[0]["status"] is None


def test_truncated_sends_less_body_than_content_length(server):
    with pytest.raises(httpx.RemoteProtocolError, match="incomplete|complete message body"):
        post(server, "[[fault:truncated]]")


def test_stall_never_answers(server):
    start = time.monotonic()
    with pytest.raises(httpx.ReadTimeout):
        post(server, "[[fault:stall]]", timeout=0.3)
    assert time.monotonic() - start < 2
    assert server.requests == 1
    wait_for(lambda: server.open_connections == 0)


def test_trickle_keeps_a_read_timeout_from_firing(server):
    arrivals = []
    with httpx.Client(timeout=httpx.Timeout(5.0, read=0.5)) as client:
        with client.stream("POST", f"{server.base_url}/chat/completions",
                           json=chat("[[fault:trickle]]")) as r:
            assert r.status_code == 200
            start = time.monotonic()
            for chunk in r.iter_raw():
                assert chunk.strip() == b""
                arrivals.append(time.monotonic() - start)
                if arrivals[-1] > 1.2:
                    break
    # Bytes kept coming past the 0.5 s read timeout, about every 0.2 s.
    assert arrivals[-1] > 1.2 and len(arrivals) >= 5
    gaps = [b - a for a, b in zip(arrivals, arrivals[1:])]
    assert max(gaps) < 0.45
    # The client hung up, and the server noticed.
    wait_for(lambda: server.open_connections == 0)


def wait_for(condition, timeout: float = 2.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.02)


def test_trickle_for_a_while_then_answers(server):
    r = post(server, "[[fault:trickle:0.5]]", timeout=2)
    assert r.status_code == 200
    assert r.text.startswith("\n\n")
    assert json.loads(r.text)["choices"][0]["finish_reason"] == "stop"


def test_stop_closes_stalled_and_trickling_connections_promptly():
    server = FakeOpenAI().start()

    async def hang(content):
        async with httpx.AsyncClient(timeout=30) as client:
            with pytest.raises(httpx.HTTPError):
                r = await client.post(f"{server.base_url}/chat/completions", json=chat(content))
                r.raise_for_status()

    async def scenario():
        tasks = [asyncio.create_task(hang(c)) for c in ("[[fault:stall]]", "[[fault:trickle]]")]
        while server.requests < 2:
            await asyncio.sleep(0.02)
        start = time.monotonic()
        await asyncio.to_thread(server.stop)
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=3)
        return time.monotonic() - start

    assert asyncio.run(scenario()) < 1.5


# ---------------------------------------------------------------- malformed 200s

def test_html_error_page_with_status_200(server):
    r = post(server, "[[fault:html]]")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert r.text.lstrip().startswith("<html>")


def test_empty_and_missing_choices(server):
    assert post(server, "[[fault:empty_choices]]").json()["choices"] == []
    reply = post(server, "[[fault:no_choices]]").json()
    assert "choices" not in reply and reply["object"] == "chat.completion"


def test_null_content_and_length(server):
    choice = post(server, "[[fault:null_content]]").json()["choices"][0]
    assert choice["message"]["content"] is None and choice["finish_reason"] == "length"

    choice = post(server, "[[fault:length]]").json()["choices"][0]
    text = choice["message"]["content"]
    assert choice["finish_reason"] == "length"
    assert "```python\n" in text and text.count("```") == 1  # cut inside the block


def test_not_json_with_a_json_content_type(server):
    r = post(server, "[[fault:not_json]]")
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    with pytest.raises(json.JSONDecodeError):
        r.json()


def test_slow_answers_normally_after_a_delay(server):
    start = time.monotonic()
    r = post(server, "[[fault:slow:0.3]]")
    assert time.monotonic() - start >= 0.3
    assert r.json()["choices"][0]["finish_reason"] == "stop"


# ---------------------------------------------------------------- selecting faults

def test_counted_marker_faults_then_recovers(server):
    statuses = [post(server, "flaky [[fault:503:2]]").status_code for _ in range(3)]
    assert statuses == [503, 503, 200]
    # The count is per exact message: another message gets its own two faults.
    assert post(server, "other [[fault:503:2]]").status_code == 503


def test_marker_without_count_always_faults(server):
    assert [post(server, "[[fault:429]]").status_code for _ in range(3)] == [429] * 3


def test_script_is_consumed_in_arrival_order(server):
    server.script(["429", None, "500"])
    assert [post(server, f"p{i}").status_code for i in range(4)] == [429, 200, 500, 200]
    assert [e["fault"] for e in server.log] == ["429", None, "500", None]
    assert [e["n"] for e in server.log] == [1, 2, 3, 4]


def test_unknown_faults_are_refused(server):
    with pytest.raises(ValueError, match="unknown fault"):
        server.script(["418"])
    r = post(server, "[[fault:teapot]]")
    assert r.status_code == 400 and r.json()["error"]["code"] == "unknown_fault"


def test_default_fault_applies_when_nothing_else_does():
    with FakeOpenAI(default_fault="503") as s:
        s.script([None, "429"])
        assert [post(s, "p").status_code for _ in range(3)] == [503, 429, 503]


# ---------------------------------------------------------------- observability

def test_log_records_authorization_and_body(server):
    post(server, "p", headers={"Authorization": "Bearer sk-test"})
    post(server, "q")
    first, second = server.log
    assert first["authorization"] == "Bearer sk-test" and second["authorization"] is None
    assert first["body"]["messages"][1]["content"] == "p"
    assert first["messages_sha1"] != second["messages_sha1"]
    server.reset()
    assert server.requests == 0 and server.log == []


def test_64_concurrent_requests_overlap():
    async def run_all(base_url):
        async with httpx.AsyncClient(timeout=10) as client:
            return await asyncio.gather(*(
                client.post(f"{base_url}/chat/completions", json=chat(f"p{i}"))
                for i in range(64)))

    with FakeOpenAI(latency=0.2) as s:
        start = time.monotonic()
        replies = asyncio.run(run_all(s.base_url))
        elapsed = time.monotonic() - start
        assert s.requests == 64
    assert all(r.status_code == 200 for r in replies)
    assert elapsed < 2, elapsed  # serial would take 64 * 0.2 = 12.8 s


# ---------------------------------------------------------------- script mode

def test_script_mode_prints_its_url_serves_and_counts(tmp_path):
    count_file = tmp_path / "count"
    proc = subprocess.Popen(
        [sys.executable, str(SERVER_SCRIPT), "--port", "0", "--latency", "0.05",
         "--fault", "429", "--count-file", str(count_file)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        base_url = proc.stdout.readline().strip()
        assert base_url.startswith("http://127.0.0.1:") and base_url.endswith("/v1")
        url = f"{base_url}/chat/completions"
        assert httpx.post(url, json=chat("p")).status_code == 429
        assert httpx.post(url, json=chat("p")).status_code == 200
        assert count_file.read_text() == "2\n"
        httpx.post(url, json=chat("q"))
        assert count_file.read_text() == "3\n"
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0
    assert out == ""  # nothing after the URL line
    assert "requests: 3" in err
    assert not [p for p in os.listdir(tmp_path) if p != "count"]  # no temp files left
