"""Apply a per-record function to a stream under one `--on-error` policy.

    stop  the first bad record ends the run with a one-line error (exit 1);
          everything already written stays written.
    skip  bad records are reported on stderr and left out (exit 3 at the end).
    emit  an error record is written in place of each bad record (exit 3).
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import threading
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Awaitable, Callable, Iterable, Iterator

from pdc.errors import EXIT_FAILED_RECORDS, EXIT_OK, PdcError, RecordError
from pdc.jsonl import Line, Writer
from pdc.log import console


class OnError(str, Enum):
    stop = "stop"
    skip = "skip"
    emit = "emit"


@dataclass
class Tally:
    """What a streaming run did; `exit_code` follows the documented table."""

    read: int = 0
    written: int = 0
    failed: int = 0
    failures: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return EXIT_FAILED_RECORDS if self.failed else EXIT_OK


def error_record(where: str, record: dict[str, Any] | None, error: RecordError) -> dict[str, Any]:
    """The record written in place of a bad input under `--on-error emit`."""
    out: dict[str, Any] = {}
    if record and isinstance(record.get("id"), str):
        out["id"] = record["id"]
    out.update({"where": where, "status": "error", "error": error.as_error_object()})
    return out


def apply(lines: Iterable[Line], fn: Callable[[dict[str, Any], str], Iterator[dict[str, Any]]],
          writer: Writer, on_error: OnError) -> Tally:
    """Run `fn(record, where)` on each line and write what it yields.

    `fn` raises RecordError for a record it cannot use; other PdcErrors end the run.
    """
    tally = Tally()
    for line in lines:
        _settle(line, lambda line=line: fn(line.record, line.where), writer, tally, on_error)
    return tally


def _settle(line: Line, produce: Callable[[], Iterable[dict[str, Any]]], writer: Writer, tally: Tally,
            on_error: OnError) -> None:
    """Write what one input line produced, or apply the policy to its RecordError."""
    tally.read += 1
    try:
        if line.error is not None:
            raise line.error
        for out in produce():
            writer.write(out)
            tally.written += 1
    except RecordError as e:
        if on_error is OnError.stop:
            raise
        tally.failed += 1
        tally.failures.append(str(e))
        console.print(f"[yellow]skipped[/] {e}" if on_error is OnError.skip else f"[yellow]error record[/] {e}",
                      markup=True, highlight=False)
        if on_error is OnError.emit:
            writer.write(error_record(line.where, line.record, e))
            tally.written += 1


_END = object()


async def apply_async(lines: Iterable[Line], afn: Callable[[dict[str, Any], str], Awaitable[dict[str, Any]]],
                      writer: Writer, on_error: OnError, window: int) -> Tally:
    """Like apply() for a coroutine giving one record per input, up to `window` inputs in flight.

    Output keeps input order: a finished record waits for the ones before it.
    Input is read by a daemon thread (a slow upstream pipe never stalls the
    requests in flight); an exception other than RecordError (a fatal teacher
    error) cancels everything in flight and propagates after what was finished
    in order has been written.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue(maxsize=window)
    threading.Thread(target=_feed, args=(lines, loop, queue), daemon=True, name="pdc-reader").start()
    pending: collections.deque[tuple[Line, asyncio.Task | None]] = collections.deque()
    getter: asyncio.Future | None = None
    exhausted = False
    tally = Tally()

    def produce(task: asyncio.Task | None) -> Callable[[], list[dict[str, Any]]]:
        return lambda: [task.result()] if task is not None else []

    try:
        while True:
            while pending and (pending[0][1] is None or pending[0][1].done()):
                line, task = pending.popleft()
                _settle(line, produce(task), writer, tally, on_error)
            if getter is None and not exhausted and len(pending) < window:
                getter = asyncio.ensure_future(queue.get())
            waits = {f for f in (getter, pending[0][1] if pending else None) if f is not None}
            if not waits:
                return tally
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            if getter is not None and getter.done():
                item, getter = getter.result(), None
                if item is _END:
                    exhausted = True
                elif isinstance(item, BaseException):
                    raise item
                else:
                    task = None if item.error is not None else asyncio.ensure_future(afn(item.record, item.where))
                    pending.append((item, task))
    finally:
        leftovers = [f for f in [getter, *(t for _, t in pending)] if f is not None and not f.done()]
        for f in leftovers:
            f.cancel()
        await asyncio.gather(*leftovers, return_exceptions=True)


def _feed(lines: Iterable[Line], loop: asyncio.AbstractEventLoop, queue: asyncio.Queue) -> None:
    """Reader thread: put each line (then _END, or the exception reading raised) on the loop's queue."""

    def put(item: Any) -> bool:
        try:
            asyncio.run_coroutine_threadsafe(queue.put(item), loop).result()
            return True
        except (RuntimeError, concurrent.futures.CancelledError):  # the loop is gone: the run ended
            return False

    try:
        for line in lines:
            if not put(line):
                return
    except BaseException as e:  # noqa: BLE001 - handed to the loop, which raises it
        put(e)
        return
    put(_END)


def finish(tally: Tally, what: str = "records") -> None:
    """Summarise on stderr and raise the 'finished with failed records' exit."""
    if tally.failed:
        raise PdcError(f"{tally.failed} of {tally.read} {what} failed (see above)",
                       exit_code=EXIT_FAILED_RECORDS)
