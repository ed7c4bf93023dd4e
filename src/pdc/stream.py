"""Apply a per-record function to a stream under one `--on-error` policy.

    stop  the first bad record ends the run with a one-line error (exit 1);
          everything already written stays written.
    skip  bad records are reported on stderr and left out (exit 3 at the end).
    emit  an error record is written in place of each bad record (exit 3).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Callable, Iterable, Iterator

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
        tally.read += 1
        try:
            if line.error is not None:
                raise line.error
            assert line.record is not None
            for out in fn(line.record, line.where):
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
    return tally


def finish(tally: Tally, what: str = "records") -> None:
    """Summarise on stderr and raise the 'finished with failed records' exit."""
    if tally.failed:
        raise PdcError(f"{tally.failed} of {tally.read} {what} failed (see above)",
                       exit_code=EXIT_FAILED_RECORDS)
