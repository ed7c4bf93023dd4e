"""Teachers over HTTP: any OpenAI-compatible chat-completions endpoint, politely and exactly once.

    from pdc.teachers.http import HttpTeacher, resolve_endpoint
    endpoint = resolve_endpoint("deepseek")                       # preset: URL, model, key variable
    teacher = HttpTeacher(endpoint, concurrency=32, cache_path="~/.cache/pdc/teacher-cache.sqlite")
    annotation = await teacher.annotate_async(record, "stdin:1")  # {"pseudocode", "teacher_code", "usage"}

One request per record: the paper's few-shot prompt (`pdc.prompt`) for the
record's language, `temperature` 0 by default. What happens to it:

1. The response cache (`pdc.cache`) is asked first; a hit costs nothing.
2. Otherwise the request waits for a slot (`concurrency` in flight), for the
   `rpm`/`tpm` budgets, for any Retry-After the server asked for, and for the
   circuit breaker; then it is sent with a hard per-request deadline that
   covers the whole exchange (a server trickling keep-alive bytes cannot hold
   a slot past it).
3. 429, 408, 409, 5xx, timeouts, dropped or truncated connections and broken
   200s (HTML, not JSON, no `choices`) are retried with exponential backoff
   and jitter, honouring Retry-After; when retries run out the record becomes
   a failure record marked retryable (not cached, so a re-run asks again).
4. 400, 413 and 422 (over-long input, bad request) are answered for that
   record alone: a failure record, cached. 401, 402, 403 and 404 stop the run
   (`TeacherFatal`): a wrong key, no balance, no access or no such model will
   not fix itself. A breaker that trips `breaker_trips` times in a row
   without a success stops the run too.
5. The answer is parsed (`pdc.teachers.parse`): numbered steps and a code
   block that tree-sitter accepts, or a failure record saying what was
   missing. It is then cached, unless the failure is retryable (an empty
   answer is asked again on a re-run).

API keys: a preset knows its variable (`OPENAI_API_KEY`, `DEEPSEEK_API_KEY`)
and sends it only to its own host; a generic endpoint or a local server gets
a key only when `--api-key-env VAR` names one. Redirects are not followed. The
key is never logged, cached or written; server messages that echo it are
redacted.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import os
import random
import re
import time
from dataclasses import dataclass, field
from typing import Any, Callable
from urllib.parse import urlsplit

from pdc.errors import PdcError
from pdc.teachers import TeacherFailure


class TeacherFatal(PdcError):
    """The endpoint refuses the whole run (bad key, no balance, no model, keeps failing)."""


# --- endpoints ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Preset:
    base_url: str
    model: str
    key_env: str | None
    server: str  # what the preset assumes is listening


PRESETS: dict[str, Preset] = {
    "gpt-4": Preset("https://api.openai.com/v1", "gpt-4", "OPENAI_API_KEY", "OpenAI API"),
    "deepseek": Preset("https://api.deepseek.com/v1", "deepseek-chat", "DEEPSEEK_API_KEY",
                       "DeepSeek API (deepseek-chat is DeepSeek-V3, 671B)"),
    "codellama-7b": Preset("http://127.0.0.1:8000/v1", "codellama/CodeLlama-7b-Instruct-hf", None,
                           "a local vLLM server (`vllm serve codellama/CodeLlama-7b-Instruct-hf`)"),
    "codeqwen-7b": Preset("http://127.0.0.1:11434/v1", "codeqwen:7b-chat", None,
                          "a local Ollama server (`ollama pull codeqwen:7b-chat`)"),
}
GENERIC = "openai"


@dataclass(frozen=True)
class Endpoint:
    name: str              # the teacher name records carry (preset name or "openai")
    base_url: str
    model: str
    key_env: str | None    # the variable the key came from (shown, never the key)
    api_key: str | None = field(default=None, repr=False)

    @property
    def chat_url(self) -> str:
        return self.base_url.rstrip("/") + "/chat/completions"


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    return parts.scheme, (parts.hostname or "").lower(), parts.port


def resolve_endpoint(teacher: str, base_url: str | None = None, model: str | None = None,
                     api_key_env: str | None = None, environ: dict[str, str] | None = None) -> Endpoint:
    """The endpoint for `--teacher NAME [--base-url] [--model] [--api-key-env]`.

    A preset's own key variable is used only while the URL stays on the preset's
    origin; `--api-key-env` is the explicit way to send a key anywhere else.
    """
    env = os.environ if environ is None else environ
    if teacher == GENERIC:
        if not base_url or not model:
            raise PdcError("--teacher openai needs --base-url URL and --model NAME", exit_code=2)
        preset = None
    elif teacher in PRESETS:
        preset = PRESETS[teacher]
    else:
        names = ", ".join([*PRESETS, GENERIC])
        raise PdcError(f"unknown HTTP teacher '{teacher}', choose one of: {names}", exit_code=2)
    url = (base_url or (preset.base_url if preset else "")).rstrip("/")
    if not re.match(r"^https?://[^/\s]+", url):
        raise PdcError(f"--base-url must be an http(s) URL, got '{url}'", exit_code=2)
    key_env = api_key_env
    if key_env is None and preset is not None and preset.key_env and _origin(url) == _origin(preset.base_url):
        key_env = preset.key_env
    key = None
    if key_env is not None:
        key = env.get(key_env) or None
        if key is None:
            raise PdcError(f"the API key variable {key_env} is not set (export {key_env}=... or name another "
                           "with --api-key-env)", exit_code=2)
    return Endpoint(teacher, url, model or (preset.model if preset else ""), key_env, key)


def redact(text: str, secret: str | None) -> str:
    """Server text with the key (and anything shaped like an API key) blanked out."""
    if secret:
        text = text.replace(secret, "[redacted]")
    return re.sub(r"\b(sk|pk|key)-[A-Za-z0-9_\-*.]{5,}[A-Za-z0-9_*]", "[redacted]", text)


# --- politeness: budgets and the breaker ----------------------------------------------------


class Budget:
    """Requests per minute and tokens per minute, plus a shared not-before time (Retry-After).

    rpm spaces request starts at least 60/rpm seconds apart; tpm is a bucket of
    tpm tokens refilled continuously, each request taking its estimated tokens
    (corrected by the usage the server reports).
    """

    def __init__(self, rpm: float | None, tpm: float | None, clock: Callable[[], float] = time.monotonic):
        self.rpm, self.tpm, self.clock = rpm, tpm, clock
        self.next_start = 0.0
        self.tokens = float(tpm or 0)
        self.refilled = clock()
        self.not_before = 0.0
        self.lock = asyncio.Lock()

    def pause_until(self, when: float) -> None:
        self.not_before = max(self.not_before, when)

    async def acquire(self, tokens: int) -> None:
        async with self.lock:  # requests start in the order they asked
            while True:
                now = self.clock()
                wait = max(0.0, self.not_before - now)
                if self.rpm:
                    wait = max(wait, self.next_start - now)
                if self.tpm:
                    self.tokens = min(self.tpm, self.tokens + (now - self.refilled) * self.tpm / 60)
                    self.refilled = now
                    need = min(tokens, self.tpm)  # a request bigger than the budget waits for a full bucket
                    if self.tokens < need:
                        wait = max(wait, (need - self.tokens) * 60 / self.tpm)
                if wait <= 0:
                    break
                await asyncio.sleep(wait)
            if self.rpm:
                self.next_start = max(now, self.next_start) + 60 / self.rpm
            if self.tpm:
                self.tokens -= min(tokens, self.tpm)

    def settle(self, estimated: int, used: int | None) -> None:
        """Give back (or take) the difference between a request's estimate and its reported usage."""
        if self.tpm and used is not None:
            self.tokens = min(self.tpm, self.tokens + estimated - used)


class Breaker:
    """Stop hammering a failing server: open after `threshold` failures in a row, probe after `cooldown`.

    While open, requests wait; after the cooldown one probe goes out (half-open).
    Its success closes the breaker; its failure reopens it with twice the
    cooldown. `trips` openings without a success in between stop the run.
    """

    def __init__(self, threshold: int, cooldown: float, trips: int, clock: Callable[[], float] = time.monotonic):
        self.threshold, self.cooldown, self.max_trips, self.clock = threshold, cooldown, trips, clock
        self.failures = 0
        self.trips = 0
        self.open_until: float | None = None
        self.probing = False
        self.changed = asyncio.Event()
        self.last_reason = ""

    async def admit(self) -> None:
        while self.open_until is not None:
            now = self.clock()
            if now < self.open_until:
                await asyncio.sleep(self.open_until - now)
            elif self.probing:
                self.changed.clear()
                await self.changed.wait()
            else:
                self.probing = True  # this request is the probe
                return

    def success(self) -> None:
        self.failures, self.trips, self.open_until, self.probing = 0, 0, None, False
        self.changed.set()

    def failure(self, reason: str) -> None:
        self.failures += 1
        self.last_reason = reason
        if self.probing or (self.open_until is None and self.failures >= self.threshold):
            self.trips += 1
            self.probing = False
            if self.trips > self.max_trips:
                self.changed.set()
                raise TeacherFatal(f"the teacher endpoint keeps failing ({reason}; {self.failures} failures in a "
                                   f"row, breaker opened {self.max_trips} times), stopping; re-run the same "
                                   "command later to resume from the cache")
            self.open_until = self.clock() + self.cooldown * 2 ** (self.trips - 1)
            self.changed.set()


# --- one request -------------------------------------------------------------------------------


class Retryable(Exception):
    """A failed attempt worth repeating; `kind` names it, `retry_after` is the server's wish (s)."""

    def __init__(self, kind: str, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.kind, self.message, self.retry_after = kind, message, retry_after


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """Retry-After as seconds: a number ("2", "0.5") or an HTTP date; None if absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def _error_message(body: bytes, limit: int = 200) -> str:
    try:
        data = json.loads(body)
        error = data.get("error") if isinstance(data, dict) else None
        message = error.get("message") if isinstance(error, dict) else (error if isinstance(error, str) else None)
        if message:
            return " ".join(str(message).split())[:limit]
    except ValueError:
        pass
    return " ".join(body[:limit].decode("utf-8", "replace").split())


@dataclass
class Settings:
    concurrency: int = 8
    rpm: float | None = None
    tpm: float | None = None
    max_retries: int = 8             # attempts after the first
    backoff: float = 1.0             # first backoff, doubled per retry
    max_backoff: float = 60.0
    request_timeout: float = 300.0   # the whole exchange, headers to last byte
    connect_timeout: float = 10.0
    breaker_threshold: int = 8
    breaker_cooldown: float = 30.0
    breaker_trips: int = 4
    temperature: float = 0.0
    max_tokens: int = 1024


class ChatClient:
    """POST /chat/completions with the retry, budget and breaker policy above."""

    def __init__(self, endpoint: Endpoint, settings: Settings, rng: random.Random | None = None):
        import httpx

        self.endpoint, self.s = endpoint, settings
        self.rng = rng or random.Random()
        self.slots = asyncio.Semaphore(settings.concurrency)
        self.budget = Budget(settings.rpm, settings.tpm)
        self.breaker = Breaker(settings.breaker_threshold, settings.breaker_cooldown, settings.breaker_trips)
        headers = {"User-Agent": "pdc", "Content-Type": "application/json"}
        if endpoint.api_key:
            headers["Authorization"] = f"Bearer {endpoint.api_key}"
        # Several small connection pools rather than one big one: httpcore's pool
        # re-scans every waiting request against every connection on each change,
        # which costs more CPU than the requests themselves at concurrency 32.
        pools = -(-settings.concurrency // self.POOL_SIZE)
        size = -(-settings.concurrency // pools)
        tls = httpx.create_ssl_context(trust_env=False)  # one verifying context (certifi) for all pools: ~50 ms each
        self.pools = [httpx.AsyncClient(
            headers=headers, follow_redirects=False, trust_env=False, verify=tls,
            timeout=httpx.Timeout(settings.request_timeout, connect=settings.connect_timeout),
            limits=httpx.Limits(max_connections=size, max_keepalive_connections=size)) for _ in range(pools)]
        self.url = httpx.URL(endpoint.chat_url)  # parsed once, not per request
        self.busy = [0] * pools
        self.requests = 0
        self.retries = 0

    POOL_SIZE = 8

    async def close(self) -> None:
        for pool in self.pools:
            await pool.aclose()

    def body(self, messages: list[dict[str, str]]) -> dict[str, Any]:
        return {"model": self.endpoint.model, "messages": messages, "temperature": self.s.temperature,
                "max_tokens": self.s.max_tokens}

    async def complete(self, messages: list[dict[str, str]]) -> dict[str, Any]:
        """The server's answer: {"text", "finish_reason", "model", "usage"} or {"rejected": status, "message"}.

        Raises TeacherFailure (retryable) when retries run out, TeacherFatal to stop the run.
        """
        body = self.body(messages)
        estimate = sum(len(m.get("content") or "") for m in messages) // 4 + self.s.max_tokens
        last: Retryable | None = None
        for attempt in range(self.s.max_retries + 1):
            if attempt:
                self.retries += 1
                await asyncio.sleep(self._backoff(attempt, last))
            async with self.slots:
                await self.breaker.admit()
                await self.budget.acquire(estimate)
                try:
                    answer = await asyncio.wait_for(self._attempt(body), self.s.request_timeout)
                except asyncio.TimeoutError:
                    last = Retryable("timeout", f"no complete answer within {self.s.request_timeout:g} s")
                except Retryable as e:
                    last = e
                else:
                    self.breaker.success()
                    self.budget.settle(estimate, (answer.get("usage") or {}).get("total_tokens"))
                    return answer
                if last.retry_after is not None:
                    self.budget.pause_until(time.monotonic() + last.retry_after)
                self.breaker.failure(f"{last.kind}: {last.message}")
        assert last is not None
        raise TeacherFailure(last.kind, f"gave up after {self.s.max_retries + 1} attempts: {last.message}",
                             retryable=True)

    def _backoff(self, attempt: int, last: Retryable | None) -> float:
        """Exponential backoff with equal jitter; at least the server's Retry-After."""
        ceiling = min(self.s.max_backoff, self.s.backoff * 2 ** (attempt - 1))
        delay = ceiling / 2 + self.rng.uniform(0, ceiling / 2)
        if last is not None and last.retry_after is not None:
            delay = max(delay, last.retry_after)
        return delay

    async def _attempt(self, body: dict[str, Any]) -> dict[str, Any]:
        import httpx

        index = min(range(len(self.pools)), key=self.busy.__getitem__)  # the least busy pool
        self.requests += 1
        self.busy[index] += 1
        try:
            response = await self.pools[index].post(self.url, json=body)
        except httpx.TimeoutException as e:
            raise Retryable("timeout", f"{type(e).__name__} from {self.endpoint.base_url}") from None
        except httpx.TransportError as e:  # refused, reset, dropped, truncated body
            raise Retryable("connection", f"{type(e).__name__}: {redact(str(e), self.endpoint.api_key)}"[:200]) \
                from None
        finally:
            self.busy[index] -= 1
        status = response.status_code
        if status == 200:
            return self._answer(response)
        message = redact(_error_message(response.content), self.endpoint.api_key)
        if status in (401, 402, 403, 404):
            what = {401: "rejected the API key", 402: "says the account has no balance (402)",
                    403: "refused access (403)", 404: "has no such endpoint or model (404)"}[status]
            hint = {401: f"check {self.endpoint.key_env or 'the key'} (--api-key-env names the variable)",
                    402: "top up the account, then re-run the same command to resume",
                    403: "check the key's permissions for this model",
                    404: f"check --base-url {self.endpoint.base_url} and --model {self.endpoint.model}"}[status]
            raise TeacherFatal(f"the teacher endpoint {self.endpoint.base_url} {what}: {message}; {hint}")
        if status in (400, 413, 422):
            return {"rejected": status, "message": message}
        if status in (408, 409, 429) or status >= 500:
            after = retry_after_seconds(response.headers.get("retry-after"))
            raise Retryable("rate_limited" if status == 429 else "server_error", f"HTTP {status}: {message}", after)
        return {"rejected": status, "message": message}

    def _answer(self, response) -> dict[str, Any]:
        kind = response.headers.get("content-type", "")
        try:
            data = response.json()
        except ValueError:
            what = "an HTML page" if "html" in kind else "a body that is not JSON"
            raise Retryable("bad_response", f"HTTP 200 with {what}") from None
        if not isinstance(data, dict) or not isinstance(data.get("choices"), list):
            raise Retryable("bad_response", "HTTP 200 without a 'choices' list")
        if not data["choices"] or not isinstance(data["choices"][0], dict):
            raise Retryable("bad_response", "HTTP 200 with empty 'choices'")
        choice = data["choices"][0]
        message = choice.get("message") if isinstance(choice.get("message"), dict) else {}
        text = message.get("content")
        usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
        return {"text": text if isinstance(text, str) else None, "finish_reason": choice.get("finish_reason"),
                "model": data.get("model") if isinstance(data.get("model"), str) else None,
                "usage": {k: usage[k] for k in ("prompt_tokens", "completion_tokens", "total_tokens")
                          if isinstance(usage.get(k), int)}}


# --- the teacher ------------------------------------------------------------------------------


class HttpTeacher:
    """An OpenAI-compatible teacher: prompt, cache, request, parse. Use inside one event loop."""

    def __init__(self, endpoint: Endpoint, settings: Settings | None = None, *, cache_path: str | None = None,
                 prompt_path: str | None = None, shots: int = 3):
        from pdc.cache import ResponseCache
        from pdc.prompt import load_prompt

        self.endpoint = endpoint
        self.settings = settings or Settings()
        self.name = endpoint.name
        self.model = endpoint.model
        self.prompt = load_prompt(prompt_path)
        self.shots = shots
        self.prompt_id = self.prompt.prompt_id("python", shots)
        self.cache = ResponseCache(cache_path)
        self.client: ChatClient | None = None
        self.usage = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
        self.cached = 0

    def model_for(self, lang: str) -> str:
        return self.endpoint.model

    def prompt_id_for(self, lang: str) -> str:
        return self.prompt.prompt_id(lang, self.shots)

    def config(self) -> dict[str, Any]:
        """What made the records, for their provenance (never the key)."""
        return {"base_url": self.endpoint.base_url, "model": self.endpoint.model, "shots": self.shots,
                "temperature": self.settings.temperature, "max_tokens": self.settings.max_tokens,
                "key_env": self.endpoint.key_env}

    async def start(self) -> None:
        self.client = ChatClient(self.endpoint, self.settings)

    async def stop(self) -> None:
        if self.client is not None:
            await self.client.close()
        self.cache.close()

    async def annotate_async(self, problem: dict[str, Any], where: str) -> dict[str, Any]:
        """{"pseudocode", "teacher_code", "usage", "served_model"}; raises TeacherFailure or TeacherFatal."""
        from pdc.cache import request_key
        from pdc.teachers.parse import parse_response

        assert self.client is not None, "call start() first"
        lang = problem["lang"]
        messages = self.prompt.messages(problem, self.shots)
        body = self.client.body(messages)
        key = request_key(self.endpoint.base_url, self.endpoint.model, messages,
                          {k: v for k, v in body.items() if k not in ("model", "messages")})
        answer = self.cache.get(key)
        cached = answer is not None
        if answer is None:
            answer = await self.client.complete(messages)
        else:
            self.cached += 1
        usage = dict(answer.get("usage") or {}, cached=cached)
        if not cached:
            for k in ("prompt_tokens", "completion_tokens", "total_tokens"):
                self.usage[k] += usage.get(k, 0)
        try:
            if "rejected" in answer:
                kind = "context_length" if re.search(r"context|too long|maximum|length|tokens", answer["message"], re.I) \
                    else "rejected"
                raise TeacherFailure(kind, f"HTTP {answer['rejected']}: {answer['message']}")
            parsed = parse_response(answer.get("text"), lang, answer.get("finish_reason"))
        except TeacherFailure as e:
            e.usage = usage
            if not cached and not e.retryable:  # the same request would get the same answer
                self.cache.put(key, answer)
            raise
        if not cached:
            self.cache.put(key, answer)
        return {**parsed, "usage": usage, "served_model": answer.get("model")}
