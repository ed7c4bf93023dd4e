"""One error policy for every command.

Expected failures raise `PdcError`; the entry point prints it as one line
(`Error: <what>, <how to fix>`) on stderr and exits with its code.

Exit codes (documented in the README):
    0    success
    1    error (bad input, bad option value, failed step)
    2    usage error (unknown option, missing argument)
    3    finished, but some records failed (failure records were written)
    130  interrupted (Ctrl-C / SIGINT)
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_FAILED_RECORDS = 3
EXIT_INTERRUPTED = 130


class PdcError(Exception):
    """An expected failure, reported as one line with no traceback."""

    exit_code = EXIT_ERROR

    def __init__(self, message: str, *, exit_code: int | None = None):
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class RecordError(PdcError):
    """A record that cannot be used: names where it came from and the field at fault."""

    def __init__(self, where: str, field: str | None, problem: str):
        self.where = where
        self.field = field
        self.problem = problem
        at = f"{where}, field '{field}'" if field else where
        super().__init__(f"{at}: {problem}")

    def as_error_object(self) -> dict:
        return {"type": "bad_record", "where": self.where, "field": self.field,
                "message": self.problem, "retryable": False}
