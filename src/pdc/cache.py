"""A persistent cache of teacher responses, so a re-run never repeats a finished call.

    from pdc.cache import ResponseCache, request_key
    cache = ResponseCache("~/.cache/pdc/teacher-cache.sqlite")
    key = request_key(endpoint, model, messages, params)
    cache.get(key)            # the stored answer (a dict) or None
    cache.put(key, answer)    # committed before put() returns

One SQLite file (WAL journal) holds every answer a teacher endpoint gave,
keyed by the sha256 of the request: the endpoint URL, the model, the exact
prompt messages and the sampling parameters. The API key is never part of the
key or of what is stored: a cached answer is the server's reply text, its
finish reason and token usage.

Each answer is committed as soon as it arrives, so a run killed with
`kill -9` keeps every answer it received; SQLite's journal makes a torn write
invisible (the transaction either committed or did not). Several processes
(`--shard I/N`) may share one cache file.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
from typing import Any

SCHEMA_VERSION = 1


def default_path() -> str:
    """$PDC_CACHE_DIR/teacher-cache.sqlite, else $XDG_CACHE_HOME/pdc/..., else ~/.cache/pdc/..."""
    root = os.environ.get("PDC_CACHE_DIR")
    if not root:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        root = os.path.join(base, "pdc")
    return os.path.join(root, "teacher-cache.sqlite")


def request_key(endpoint: str, model: str, messages: Any, params: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of what determines an answer (never the API key)."""
    blob = json.dumps({"v": SCHEMA_VERSION, "endpoint": endpoint.rstrip("/"), "model": model,
                       "messages": messages, "params": params},
                      sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class ResponseCache:
    """Answers by request key, in one SQLite file; `None` path disables caching."""

    def __init__(self, path: str | None):
        self.path = path
        self.hits = 0
        self.stores = 0
        self._db: sqlite3.Connection | None = None
        if path is None:
            return
        from pdc.errors import PdcError

        path = os.path.expanduser(path)
        self.path = path
        try:
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
            db = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")  # durable against a killed process, cheap per commit
            db.execute("CREATE TABLE IF NOT EXISTS answers (key TEXT PRIMARY KEY, answer TEXT NOT NULL, "
                       "created REAL NOT NULL)")
        except sqlite3.DatabaseError as e:
            raise PdcError(f"cannot open the response cache {path}: {e} (choose another with --cache, "
                           "or --no-cache)") from None
        self._db = db

    def get(self, key: str) -> dict[str, Any] | None:
        if self._db is None:
            return None
        row = self._db.execute("SELECT answer FROM answers WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        self.hits += 1
        return json.loads(row[0])

    def put(self, key: str, answer: dict[str, Any]) -> None:
        if self._db is None:
            return
        self._db.execute("INSERT OR REPLACE INTO answers (key, answer, created) VALUES (?, ?, ?)",
                         (key, json.dumps(answer, ensure_ascii=False), time.time()))
        self.stores += 1

    def __len__(self) -> int:
        if self._db is None:
            return 0
        return self._db.execute("SELECT COUNT(*) FROM answers").fetchone()[0]

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
