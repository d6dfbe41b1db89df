"""Logging for the CLI: JSON lines to run.log, short lines on stderr, and the API key redacted
before any handler sees a record. Library modules only call logging.getLogger(__name__)."""

from __future__ import annotations

import contextlib
import json
import logging
import sys
from pathlib import Path

from tqdm import tqdm

from batchgen.isotime import iso_utc


class RedactFilter(logging.Filter):
    """Replaces every occurrence of the secrets in a record's final message."""

    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        self._secrets = [s for s in secrets if s]

    def filter(self, record: logging.LogRecord) -> bool:
        message = _redact(record.getMessage(), self._secrets)
        record.msg, record.args = message, None
        if record.exc_info:  # a traceback could quote the key: keep only its redacted summary
            record.msg = f"{message} ({_redact(repr(record.exc_info[1]), self._secrets)})"
            record.exc_info = None
            record.exc_text = None
        return True


def _redact(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, "***")
    return text


def job_key(key: str) -> dict[str, str]:
    """`extra=` for a line that names a job for people (by its readable name): run.log keeps the key,
    for programs, as the line's `key` field."""
    return {"job_key": key}


class JsonLines(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        seconds = round(record.created, 3)  # both fields from it: the same millisecond, never one apart
        line = {
            "time": iso_utc(seconds, ms=True),  # for people; "t" (epoch seconds) for programs
            "t": seconds,
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        key = getattr(record, "job_key", None)
        if isinstance(key, str):
            line["key"] = key
        return json.dumps(line)


class Human(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return f"batchgen: {record.levelname.lower()}: {record.getMessage()}"


class BarFriendlyHandler(logging.Handler):
    """Writes lines to stderr through tqdm, so a progress bar is redrawn below them, not torn."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:  # logging must never take the run down
            self.handleError(record)


def configure(*, secrets: list[str], verbose: bool = False) -> RedactFilter:
    """Install the stderr handler on the 'batchgen' logger; returns the redaction filter. Per-step lines
    (each job submitted, finished, downloaded) are DEBUG: on stderr and in run.log only with `verbose`."""
    logger = logging.getLogger("batchgen")
    logger.setLevel(logging.DEBUG if verbose else logging.INFO)
    logger.propagate = False
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
    redact = RedactFilter(secrets)
    stderr = BarFriendlyHandler()
    stderr.setLevel(logging.DEBUG if verbose else logging.WARNING)
    stderr.setFormatter(Human())
    stderr.addFilter(redact)
    logger.addHandler(stderr)
    return redact


class RunLogHandler(logging.FileHandler):
    """run.log's handler: a line the disk refuses (full, read-only) is lost quietly, never printed as a
    traceback; the run reports the disk's refusal itself where it matters (the journal, the results)."""

    def handleError(self, record: logging.LogRecord) -> None:
        pass

    def close(self) -> None:
        with contextlib.suppress(OSError):  # flushing what was buffered failed: nothing more to do with it
            super().close()


def add_run_log(run_dir: Path, redact: RedactFilter) -> logging.Handler:
    """run.log in `run_dir`: JSON lines at the `batchgen` logger's level (INFO, or DEBUG with -v)."""
    handler = RunLogHandler(run_dir / "run.log", encoding="utf-8")
    handler.setLevel(logging.NOTSET)
    handler.setFormatter(JsonLines())
    handler.addFilter(redact)
    logging.getLogger("batchgen").addHandler(handler)
    return handler


def remove_handler(handler: logging.Handler) -> None:
    logging.getLogger("batchgen").removeHandler(handler)
    handler.close()
