"""A local OpenAI-compatible chat-completions server with fault injection.

Real HTTP/1.1 over TCP on 127.0.0.1 (asyncio, keep-alive, Content-Length
bodies), so HTTP teachers are tested against the real protocol:

    from openai_server import FakeOpenAI

    with FakeOpenAI(latency=0.0) as server:
        server.base_url          # "http://127.0.0.1:PORT/v1"
        server.script(["429", None])
        ...
        server.requests, server.log

or from a shell (prints the base URL as stdout's first line, serves until
SIGTERM/SIGINT, prints the request count on stderr at exit):

    python tests/openai_server.py --port 0 --latency 0.1 --count-file n.txt

Endpoints: `POST /v1/chat/completions`, `GET /v1/models`.

A normal answer is a deterministic teacher reply to the last user message:
numbered pseudocode, then a fenced code block in the language named by a
`Language: <lang>` line (python, ruby, javascript, go, java, php; default
python), carrying a sha1 digest of the message so problems differ.

Faults, chosen per request by `server.script([...])` (a queue consumed one
per request, None = no scripted fault), else by a marker in the last user
message, `[[fault:NAME]]` (always) or `[[fault:NAME:COUNT]]` (only the first
COUNT requests carrying that exact message), else by `default_fault`:

    429            429 + Retry-After (`retry_after`, default "1") + OpenAI error
    500 502 503    server errors, OpenAI error JSON
    400_context    400, code "context_length_exceeded" (vLLM message)
    422            422, TGI's own shape: {"error": "Input validation error: ...",
                   "error_type": "validation"} (error is a string, not an object)
    401 403        OpenAI auth / region errors
    402            DeepSeek "Insufficient Balance"
    drop           read the request, close the socket, no response
    stall          read the request, never answer (until the client or server
                   closes the connection)
    truncated      Content-Length of the full body, half the body sent, close
    html           200 text/html (a proxy's error page)
    empty_choices  200, "choices": []
    no_choices     200, no "choices" key
    null_content   200, content null, finish_reason "length"
    length         200, text cut inside the code block, finish_reason "length"
    not_json       200 application/json whose body is not JSON
    trickle        200 chunked headers, then "\\n" every `trickle_interval`
                   (0.2 s) forever, like DeepSeek's keep-alive while queueing
    trickle:SECS   the same for SECS seconds, then the normal answer
    slow:SECS      the normal answer after SECS more seconds

`latency` is slept (asyncio, so requests overlap) before every 200 answer
whose body is sent at once: normal, slow, and the malformed-200 faults. Error
statuses, drop, stall, truncated and trickle answer without it.

Standard library only, so the script starts fast in other processes.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import re
import signal
import sys
import threading
import time
from collections import deque
from http import HTTPStatus
from typing import Any, Callable

DEFAULT_MODEL = "fake-teacher"

# ---------------------------------------------------------------- faults

# fault -> (status, JSON body). Bodies mirror what the named servers send.
ERROR_FAULTS: dict[str, tuple[int, Any]] = {
    "429": (429, {"error": {
        "message": "Rate limit reached for requests. Please try again later.",
        "type": "requests", "param": None, "code": "rate_limit_exceeded"}}),
    "500": (500, {"error": {
        "message": "The server had an error while processing your request. Sorry about that!",
        "type": "server_error", "param": None, "code": None}}),
    "502": (502, {"error": {
        "message": "Bad gateway.", "type": "server_error", "param": None,
        "code": "bad_gateway"}}),
    "503": (503, {"error": {
        "message": "The engine is currently overloaded, please try again later.",
        "type": "server_error", "param": None, "code": "service_unavailable"}}),
    "400_context": (400, {"error": {
        "message": "This model's maximum context length is 4096 tokens. However, you "
                   "requested 5120 tokens (4096 in the messages, 1024 in the completion). "
                   "Please reduce the length of the messages or completion.",
        "type": "BadRequestError", "param": None, "code": "context_length_exceeded"}}),
    "422": (422, {
        "error": "Input validation error: `inputs` tokens + `max_new_tokens` must be "
                 "<= 4096. Given: 4000 `inputs` tokens and 1024 `max_new_tokens`",
        "error_type": "validation"}),
    "401": (401, {"error": {
        "message": "Incorrect API key provided. You can find your API key at "
                   "https://platform.openai.com/account/api-keys.",
        "type": "invalid_request_error", "param": None, "code": "invalid_api_key"}}),
    "402": (402, {"error": {
        "message": "Insufficient Balance", "type": "unknown_error", "param": None,
        "code": "invalid_request_error"}}),
    "403": (403, {"error": {
        "message": "Country, region, or territory not supported",
        "type": "request_forbidden", "param": None,
        "code": "unsupported_country_region_territory"}}),
}
BAD_200_FAULTS = ("html", "empty_choices", "no_choices", "null_content", "length", "not_json")
CONNECTION_FAULTS = ("drop", "stall", "truncated", "trickle")
FAULTS: tuple[str, ...] = (*ERROR_FAULTS, *CONNECTION_FAULTS, *BAD_200_FAULTS, "slow:SECONDS",
                           "trickle:SECONDS")

_TIMED_FAULT = re.compile(r"(slow|trickle):(\d+(?:\.\d+)?)")
_MARKER = re.compile(r"\[\[fault:((?:slow|trickle):\d+(?:\.\d+)?|[A-Za-z0-9_]+)(?::(\d+))?\]\]")

HTML_PAGE = (b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
             b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
             b"</body>\r\n</html>\r\n")
NOT_JSON = b"upstream connect error or disconnect/reset before headers. reset reason: overflow"


def is_fault(name: str) -> bool:
    return (name in ERROR_FAULTS or name in CONNECTION_FAULTS or name in BAD_200_FAULTS
            or _TIMED_FAULT.fullmatch(name) is not None)


def check_fault(name: str | None) -> str | None:
    """`name` itself if it is a known fault (or None), else ValueError."""
    if name is None or is_fault(name):
        return name
    raise ValueError(f"unknown fault {name!r}; known: {', '.join(FAULTS)}")


def fault_status(fault: str | None) -> int | None:
    """The HTTP status a fault answers with (None: no status line is ever sent)."""
    if fault in ("drop", "stall"):
        return None
    if fault in ERROR_FAULTS:
        return ERROR_FAULTS[fault][0]
    return 200


# ---------------------------------------------------------------- answers

CODE_TEMPLATES = {
    "python": "def solve(x):\n    # problem {d}\n    return x",
    "ruby": "def solve(x)\n  # problem {d}\n  x\nend",
    "javascript": "function solve(x) {{\n  // problem {d}\n  return x;\n}}",
    "go": "func solve(x int) int {{\n\t// problem {d}\n\treturn x\n}}",
    "java": "public static int solve(int x) {{\n    // problem {d}\n    return x;\n}}",
    "php": "<?php\nfunction solve($x) {{\n    // problem {d}\n    return $x;\n}}",
}
_LANGUAGE_LINE = re.compile(r"^\s*Language:\s*([A-Za-z]+)\s*$", re.MULTILINE | re.IGNORECASE)


def message_text(content: Any) -> str:
    """The text of a message's content (a string, or a list of {"type": "text"} parts)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def last_user_message(body: Any) -> str:
    """The text of the last message with role "user" ("" if there is none)."""
    messages = body.get("messages") if isinstance(body, dict) else None
    for message in reversed(messages if isinstance(messages, list) else []):
        if isinstance(message, dict) and message.get("role") == "user":
            return message_text(message.get("content"))
    return ""


def default_answer(body: dict[str, Any]) -> str:
    """The deterministic teacher answer to the last user message (see module docstring)."""
    problem = last_user_message(body)
    digest = hashlib.sha1(problem.encode("utf-8")).hexdigest()[:8]
    found = _LANGUAGE_LINE.search(problem)
    lang = found.group(1).lower() if found else "python"
    if lang not in CODE_TEMPLATES:
        lang = "python"
    code = CODE_TEMPLATES[lang].format(d=digest)
    return (
        "Pseudocode:\n"
        "1. Define a function `solve` that takes `x`.\n"
        f"2. Work out the answer to problem {digest} from `x`.\n"
        "3. Return the result.\n"
        "Code:\n"
        f"```{lang}\n{code}\n```"
    )


def cut_in_code_block(text: str) -> str:
    """`text` cut halfway through its code block (halfway through the text if it has none)."""
    start = text.find("```")
    if start < 0:
        return text[: len(text) // 2]
    code_start = text.find("\n", start) + 1
    code_end = text.find("```", code_start)
    code_end = len(text) if code_end < 0 else code_end
    return text[: code_start + (code_end - code_start) // 2]


def count_words(text: str | None) -> int:
    return len(text.split()) if text else 0


def completion(n: int, body: dict[str, Any], text: str | None,
               finish_reason: str = "stop") -> dict[str, Any]:
    """A chat.completion object in the real OpenAI shape."""
    messages = body.get("messages") if isinstance(body.get("messages"), list) else []
    prompt_tokens = sum(count_words(message_text(m.get("content")))
                        for m in messages if isinstance(m, dict))
    completion_tokens = count_words(text)
    model = body.get("model") if isinstance(body.get("model"), str) else DEFAULT_MODEL
    return {
        "id": f"chatcmpl-fake-{n}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": text},
            "finish_reason": finish_reason,
        }],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


# ---------------------------------------------------------------- HTTP/1.1


class BadRequest(Exception):
    """The bytes on the wire are not an HTTP request this server can read."""


class Request:
    def __init__(self, method: str, path: str, version: str, headers: dict[str, str],
                 body: bytes):
        self.method, self.path, self.version = method, path, version
        self.headers, self.body = headers, body

    @property
    def keep_alive(self) -> bool:
        connection = self.headers.get("connection", "").lower()
        if self.version == "HTTP/1.0":
            return connection == "keep-alive"
        return connection != "close"


async def read_request(reader: asyncio.StreamReader,
                       writer: asyncio.StreamWriter) -> Request | None:
    """The next request on a connection, or None when the client closed it cleanly."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as e:
        if e.partial.strip():
            raise BadRequest("connection closed inside the request head") from None
        return None
    except asyncio.LimitOverrunError:
        raise BadRequest("request head too large") from None
    lines = head.decode("latin-1").split("\r\n")
    try:
        method, path, version = lines[0].split(" ")
    except ValueError:
        raise BadRequest(f"bad request line {lines[0]!r}") from None
    headers = {}
    for line in lines[1:]:
        if line:
            name, sep, value = line.partition(":")
            if not sep:
                raise BadRequest(f"bad header line {line!r}")
            headers[name.strip().lower()] = value.strip()
    if "chunked" in headers.get("transfer-encoding", "").lower():
        raise BadRequest("chunked request bodies are not supported")
    try:
        length = int(headers.get("content-length", "0"))
    except ValueError:
        raise BadRequest("bad Content-Length") from None
    if length and headers.get("expect", "").lower() == "100-continue":
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    body = await reader.readexactly(length) if length else b""
    return Request(method, path, version, headers, body)


def response_head(status: int, headers: dict[str, str]) -> bytes:
    lines = [f"HTTP/1.1 {status} {HTTPStatus(status).phrase}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def http_response(status: int, body: bytes, *, content_type: str = "application/json",
                  keep_alive: bool = True, extra: dict[str, str] | None = None) -> bytes:
    headers = {
        "Content-Type": content_type,
        "Content-Length": str(len(body)),
        "Connection": "keep-alive" if keep_alive else "close",
        **(extra or {}),
    }
    return response_head(status, headers) + body


def json_bytes(obj: Any) -> bytes:
    return json.dumps(obj).encode("utf-8")


# ---------------------------------------------------------------- the server


class FakeOpenAI:
    """An OpenAI-compatible server on 127.0.0.1, run in a background thread.

    latency: seconds slept before each 200 answer (see module docstring).
    responder: request JSON -> answer text; replaces `default_answer`.
    retry_after: the 429 Retry-After header value, seconds ("1", "0.2", 300).
    default_fault: the fault for requests that neither the script nor a marker fault.
    trickle_interval: seconds between the bytes a trickling answer sends.
    count_file: rewritten atomically with the request count after each request.
    """

    def __init__(self, *, latency: float = 0.0,
                 responder: Callable[[dict[str, Any]], str] | None = None,
                 retry_after: float | str = 1, default_fault: str | None = None,
                 trickle_interval: float = 0.2, models: tuple[str, ...] = (DEFAULT_MODEL,),
                 count_file: str | None = None, host: str = "127.0.0.1", port: int = 0):
        self.latency = latency
        self.responder = responder or default_answer
        self.retry_after = retry_after
        self.default_fault = check_fault(default_fault)
        self.trickle_interval = trickle_interval
        self.models = models
        self.count_file = count_file
        self.host, self.port = host, port
        self._lock = threading.Lock()
        self._script: deque[str | None] = deque()
        self._marker_counts: dict[str, int] = {}
        self._log: list[dict[str, Any]] = []
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._connections: set[asyncio.Task] = set()

    # ------------------------------------------------ public API

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    @property
    def requests(self) -> int:
        """Chat-completion requests received so far, faulted ones included."""
        with self._lock:
            return len(self._log)

    @property
    def log(self) -> list[dict[str, Any]]:
        """A copy of the request log: {n, fault, status, messages_sha1, authorization, body}."""
        with self._lock:
            return [dict(entry) for entry in self._log]

    @property
    def open_connections(self) -> int:
        """TCP connections open now (a client that gave up on a stall or trickle has left)."""
        return len(self._connections)

    def script(self, faults: list[str | None]) -> None:
        """Queue faults for the next requests, one each in arrival order (None: no fault)."""
        for fault in faults:
            check_fault(fault)
        with self._lock:
            self._script.extend(faults)

    def reset(self) -> None:
        """Forget the log, the request count, the script queue and marker counts."""
        with self._lock:
            self._log.clear()
            self._script.clear()
            self._marker_counts.clear()

    def start(self) -> "FakeOpenAI":
        """Listen on an ephemeral port (or `port`) and serve from a background thread."""
        ready = threading.Event()
        failure: list[BaseException] = []
        self._thread = threading.Thread(target=self._run, args=(ready, failure),
                                        name="fake-openai", daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            raise failure[0]
        self._write_count(0)
        return self

    def stop(self) -> None:
        """Close the listener and every open connection (stalled, trickling ones too)."""
        if self._thread is None:
            return
        if self._loop is not None and self._stopping is not None:
            try:
                self._loop.call_soon_threadsafe(self._stopping.set)
            except RuntimeError:  # the loop already ended
                pass
        self._thread.join(timeout=10)
        self._thread = None

    def __enter__(self) -> "FakeOpenAI":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    # ------------------------------------------------ event loop thread

    def _run(self, ready: threading.Event, failure: list[BaseException]) -> None:
        try:
            asyncio.run(self._main(ready))
        except BaseException as e:  # noqa: BLE001 - handed to the starting thread
            failure.append(e)
        finally:
            ready.set()

    async def _main(self, ready: threading.Event) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        listener = await asyncio.start_server(self._serve_connection, self.host, self.port,
                                              limit=1 << 20, backlog=1024)
        self.port = listener.sockets[0].getsockname()[1]
        ready.set()
        await self._stopping.wait()
        listener.close()
        connections = list(self._connections)
        for task in connections:
            task.cancel()
        await asyncio.gather(*connections, return_exceptions=True)
        await listener.wait_closed()

    async def _serve_connection(self, reader: asyncio.StreamReader,
                                writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        self._connections.add(task)
        try:
            while True:
                request = await read_request(reader, writer)
                if request is None:
                    break
                if not await self._respond(request, reader, writer):
                    break
            writer.close()
        except BadRequest as e:
            body = json_bytes({"error": {"message": str(e), "type": "invalid_request_error",
                                         "param": None, "code": None}})
            writer.write(http_response(400, body, keep_alive=False))
            writer.close()
        except (ConnectionError, asyncio.IncompleteReadError):
            writer.transport.abort()
        except asyncio.CancelledError:  # the server is stopping
            writer.transport.abort()
        except Exception as e:  # a bug here or in a responder: say so, then close
            body = json_bytes({"error": {"message": f"fake server: {type(e).__name__}: {e}",
                                         "type": "server_error", "param": None, "code": None}})
            writer.write(http_response(500, body, keep_alive=False))
            writer.close()
        finally:
            self._connections.discard(task)

    async def _respond(self, request: Request, reader: asyncio.StreamReader,
                       writer: asyncio.StreamWriter) -> bool:
        """Answer one request; False when the connection must then be closed."""
        keep = request.keep_alive
        path = request.path.split("?", 1)[0].rstrip("/")
        if path == "/v1/models" and request.method == "GET":
            data = [{"id": m, "object": "model", "created": 0, "owned_by": "pdc-tests"}
                    for m in self.models]
            writer.write(http_response(200, json_bytes({"object": "list", "data": data}),
                                       keep_alive=keep))
        elif path == "/v1/chat/completions" and request.method == "POST":
            return await self._chat(request, reader, writer)
        elif path in ("/v1/models", "/v1/chat/completions"):
            writer.write(http_response(405, self._error_body("method not allowed"),
                                       keep_alive=keep))
        else:
            writer.write(http_response(404, self._error_body(f"no route {request.path}"),
                                       keep_alive=keep))
        await writer.drain()
        return keep

    @staticmethod
    def _error_body(message: str, code: str | None = None) -> bytes:
        return json_bytes({"error": {"message": message, "type": "invalid_request_error",
                                     "param": None, "code": code}})

    # ------------------------------------------------ chat completions

    def _receive(self, request: Request) -> tuple[dict[str, Any], str | None, dict[str, Any] | None]:
        """Log one chat request and choose its fault: (log entry, fault, parsed body)."""
        try:
            body = json.loads(request.body)
        except ValueError:
            body = None
        if not isinstance(body, dict):
            body = None
        messages = body.get("messages") if body else None
        messages_sha1 = hashlib.sha1(
            json.dumps(messages, sort_keys=True).encode("utf-8")).hexdigest()
        with self._lock:
            fault = self._script.popleft() if self._script else None
            if fault is None and body is not None:
                fault = self._marker_fault(last_user_message(body))
            if fault is None:
                fault = self.default_fault
            if body is None:
                fault, status = None, 400
            elif fault is not None and not is_fault(fault):
                status = 400  # an unknown name in a marker
            else:
                status = fault_status(fault)
            entry = {
                "n": len(self._log) + 1,
                "fault": fault,
                "status": status,
                "messages_sha1": messages_sha1,
                "authorization": request.headers.get("authorization"),
                "body": body,
            }
            self._log.append(entry)
            count = len(self._log)
        self._write_count(count)
        return entry, fault, body

    def _marker_fault(self, text: str) -> str | None:
        """The fault a `[[fault:NAME[:COUNT]]]` marker asks for this time (lock held)."""
        found = _MARKER.search(text)
        if not found:
            return None
        name, limit = found.group(1), found.group(2)
        seen = self._marker_counts.get(text, 0) + 1
        self._marker_counts[text] = seen
        if limit is not None and seen > int(limit):
            return None
        return name

    async def _chat(self, request: Request, reader: asyncio.StreamReader,
                    writer: asyncio.StreamWriter) -> bool:
        keep = request.keep_alive
        entry, fault, body = self._receive(request)
        n = entry["n"]

        def send_json(status: int, obj: Any, extra: dict[str, str] | None = None) -> None:
            writer.write(http_response(status, json_bytes(obj), keep_alive=keep, extra=extra))

        if body is None:
            writer.write(http_response(400, self._error_body(
                "We could not parse the JSON body of your request."), keep_alive=keep))
        elif fault is not None and not is_fault(fault):
            writer.write(http_response(400, self._error_body(
                f"fake server: unknown fault {fault!r}", "unknown_fault"), keep_alive=keep))
        elif fault in ERROR_FAULTS:
            status, error = ERROR_FAULTS[fault]
            extra = {"Retry-After": str(self.retry_after)} if fault == "429" else None
            send_json(status, error, extra)
        elif fault == "drop":
            return False
        elif fault == "stall":
            await read_until_eof(reader)
            return False
        elif fault == "truncated":
            full = json_bytes(completion(n, body, self.responder(body)))
            writer.write(response_head(200, {"Content-Type": "application/json",
                                             "Content-Length": str(len(full))}))
            writer.write(full[: len(full) // 2])
            await writer.drain()
            return False
        elif fault is not None and fault.startswith("trickle"):
            return await self._trickle(fault, n, body, reader, writer)
        else:
            delay = self.latency
            if fault is not None and fault.startswith("slow:"):
                delay += float(fault.split(":", 1)[1])
            await asyncio.sleep(delay)
            if fault == "html":
                writer.write(http_response(200, HTML_PAGE, content_type="text/html; charset=utf-8",
                                           keep_alive=keep))
            elif fault == "not_json":
                writer.write(http_response(200, NOT_JSON, keep_alive=keep))
            elif fault == "empty_choices":
                send_json(200, {**completion(n, body, None), "choices": []})
            elif fault == "no_choices":
                reply = completion(n, body, None)
                del reply["choices"]
                send_json(200, reply)
            elif fault == "null_content":
                reply = completion(n, body, None, "length")
                max_tokens = body.get("max_tokens")
                reply["usage"]["completion_tokens"] = max_tokens if isinstance(max_tokens, int) else 0
                send_json(200, reply)
            elif fault == "length":
                send_json(200, completion(n, body, cut_in_code_block(self.responder(body)),
                                          "length"))
            else:
                send_json(200, completion(n, body, self.responder(body)))
        await writer.drain()
        return keep

    async def _trickle(self, fault: str, n: int, body: dict[str, Any],
                       reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """200 chunked headers, then a newline every `trickle_interval` (then the answer
        if the fault is `trickle:SECS`); ends early when the client goes away."""
        duration = float(fault.split(":", 1)[1]) if ":" in fault else None
        writer.write(response_head(200, {"Content-Type": "application/json",
                                         "Transfer-Encoding": "chunked",
                                         "Connection": "close"}))
        await writer.drain()
        deadline = None if duration is None else time.monotonic() + duration
        eof = asyncio.ensure_future(read_until_eof(reader))
        try:
            while deadline is None or time.monotonic() < deadline:
                await asyncio.wait([eof], timeout=self.trickle_interval)
                if eof.done():
                    return False
                writer.write(b"1\r\n\n\r\n")
                await writer.drain()
            reply = json_bytes(completion(n, body, self.responder(body)))
            writer.write(b"%x\r\n%s\r\n0\r\n\r\n" % (len(reply), reply))
            await writer.drain()
            return False
        finally:
            eof.cancel()

    def _write_count(self, count: int) -> None:
        if self.count_file is None:
            return
        tmp = f"{self.count_file}.tmp{os.getpid()}"
        with open(tmp, "w") as f:
            f.write(f"{count}\n")
        os.replace(tmp, self.count_file)


async def read_until_eof(reader: asyncio.StreamReader) -> None:
    """Read and discard until the peer closes its side."""
    try:
        while await reader.read(65536):
            pass
    except ConnectionError:
        pass


# ---------------------------------------------------------------- script mode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--fault", action="append", default=[], metavar="NAME",
                        help="queue a fault for the next request (repeatable, in order; "
                             "'none' queues a normal answer)")
    parser.add_argument("--default-fault", metavar="NAME",
                        help="fault every request the queue and markers leave alone")
    parser.add_argument("--retry-after", default="1")
    parser.add_argument("--count-file", metavar="PATH")
    args = parser.parse_args(argv)

    server = FakeOpenAI(latency=args.latency, port=args.port, retry_after=args.retry_after,
                        default_fault=args.default_fault, count_file=args.count_file)
    server.script([None if f == "none" else f for f in args.fault])
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    with server:
        print(server.base_url, flush=True)
        while not stop.wait(0.5):
            pass
    print(f"requests: {server.requests}", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
