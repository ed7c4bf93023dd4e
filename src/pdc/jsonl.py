"""Streaming JSON Lines input and output.

Every command reads records lazily from files or stdin and writes each result
as soon as it is ready. Input is read as bytes and decoded line by line so a
bad byte, a bad number (`NaN`), absurd nesting or a lone surrogate is reported
with its line number instead of a position in the whole stream.
"""

from __future__ import annotations

import gzip
import io
import json
import sys
from dataclasses import dataclass
from typing import IO, Any, Iterable, Iterator

from pdc.errors import PdcError, RecordError


@dataclass(frozen=True)
class Line:
    """One input record and where it came from (`file:line`).

    When read tolerantly, a malformed line has `record` None and `error` set.
    """

    where: str
    record: dict[str, Any] | None
    error: RecordError | None = None


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not valid JSON")


def parse_line(text: str | bytes, where: str) -> dict[str, Any]:
    """Parse one JSONL line into a dict, raising RecordError naming `where`."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as e:
            raise RecordError(where, None, f"not UTF-8 (byte {e.start})") from None
    try:
        obj = json.loads(text, parse_constant=_reject_constant)
    except RecursionError:
        raise RecordError(where, None, "JSON nested too deeply") from None
    except ValueError as e:
        raise RecordError(where, None, f"not valid JSON ({e})") from None
    if not isinstance(obj, dict):
        raise RecordError(where, None, f"expected a JSON object, got {type(obj).__name__}")
    try:
        json.dumps(obj, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise RecordError(where, None, "contains a lone surrogate (\\ud800-\\udfff)") from None
    return obj


def open_binary(path: str, stdin: IO[bytes] | None = None) -> IO[bytes]:
    """Open `path` for reading bytes; `-` is stdin; `.gz` files are decompressed."""
    if path == "-":
        raw = stdin if stdin is not None else sys.stdin.buffer
        return raw
    try:
        fh: IO[bytes] = open(path, "rb")
    except OSError as e:
        raise PdcError(f"cannot open {path}: {e.strerror}, check the path") from None
    if path.endswith(".gz"):
        return gzip.GzipFile(fileobj=fh)  # type: ignore[return-value]
    return fh


def stdin_binary() -> IO[bytes]:
    """The process's stdin as bytes (CliRunner gives a text stream with .buffer)."""
    return getattr(sys.stdin, "buffer", sys.stdin)


def check_not_terminal(paths: list[str]) -> None:
    """Refuse to wait on an interactive terminal when no input was given."""
    if paths == ["-"] and sys.stdin is not None and sys.stdin.isatty():
        raise PdcError(
            "no input: stdin is a terminal, pipe JSONL records in or name input files",
            exit_code=2,
        )


def read_lines(paths: Iterable[str], *, tolerant: bool = False) -> Iterator[Line]:
    """Yield every record of every input path in order (`-` = stdin), lazily.

    Blank lines are skipped. A malformed line raises RecordError naming it, or
    with `tolerant=True` is yielded as a Line carrying the error.
    """
    for path in paths:
        name = "stdin" if path == "-" else path
        fh = open_binary(path, stdin_binary())
        try:
            for n, raw in enumerate(fh, start=1):
                if not raw.strip():
                    continue
                where = f"{name}:{n}"
                try:
                    yield Line(where, parse_line(raw, where))
                except RecordError as e:
                    if not tolerant:
                        raise
                    yield Line(where, None, e)
        except (EOFError, gzip.BadGzipFile, OSError) as e:
            raise PdcError(f"{name}: cannot read ({e}), the file may be truncated") from None
        finally:
            if path != "-":
                fh.close()


def read_records(paths: Iterable[str]) -> Iterator[dict[str, Any]]:
    """Like read_lines but yields the bare records."""
    for line in read_lines(paths):
        yield line.record


def dumps(record: dict[str, Any]) -> str:
    """One JSONL line (no newline): UTF-8 text, no NaN, compact separators."""
    return json.dumps(record, ensure_ascii=False, allow_nan=False, separators=(", ", ": "))


class Writer:
    """Write records as JSONL to a text stream, flushing after each record."""

    def __init__(self, stream: IO[str] | None = None):
        self.stream = stream if stream is not None else sys.stdout
        self.count = 0

    def write(self, record: dict[str, Any]) -> None:
        self.stream.write(dumps(record) + "\n")
        self.stream.flush()
        self.count += 1


def write_jsonl_file(path: str, records: Iterable[dict[str, Any]]) -> int:
    """Write records to `path` atomically (temporary name, then rename)."""
    import os
    import tempfile

    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".jsonl", dir=directory)
    n = 0
    try:
        with io.open(fd, "w", encoding="utf-8") as fh:
            for record in records:
                fh.write(dumps(record) + "\n")
                n += 1
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return n


def require(record: dict[str, Any], field: str, where: str, kind: type | tuple = str,
            *, nonempty: bool = True) -> Any:
    """Return record[field], raising RecordError if missing, of the wrong type or empty."""
    if field not in record or record[field] is None:
        raise RecordError(where, field, "missing")
    value = record[field]
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        names = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise RecordError(where, field, f"expected {names}, got {type(value).__name__}")
    if nonempty and isinstance(value, (str, list)) and not value:
        raise RecordError(where, field, "empty")
    return value
