"""Logging for the CLI: the API key is redacted everywhere, JSON lines in run.log."""

import errno
import io
import json
import logging
from datetime import datetime
from pathlib import Path

import pytest

from batchgen import logs


def test_the_key_is_redacted_on_stderr_and_in_run_log(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A record quoting the key, even through an exception, shows *** on stderr and in run.log."""
    redact = logs.configure(secrets=["sk-SECRET-1"], verbose=True)
    handler = logs.add_run_log(tmp_path, redact)
    log = logging.getLogger("batchgen.test")
    try:
        log.warning("calling with %s", "Bearer sk-SECRET-1")
        try:
            raise RuntimeError("header was sk-SECRET-1")
        except RuntimeError:
            log.exception("failed")
    finally:
        logs.remove_handler(handler)
    err = capsys.readouterr().err
    text = (tmp_path / "run.log").read_text()
    assert "sk-SECRET-1" not in err and "sk-SECRET-1" not in text
    assert "Bearer ***" in err
    lines = [json.loads(line) for line in text.splitlines()]
    assert lines[0]["message"] == "calling with Bearer ***" and lines[0]["level"] == "warning"
    # each line's time for people (ISO-8601 UTC, to the millisecond) beside the epoch seconds for programs
    stamp = datetime.fromisoformat(lines[0]["time"])
    assert lines[0]["time"].endswith("Z") and abs(stamp.timestamp() - lines[0]["t"]) < 0.0005
    assert "header was ***" in lines[1]["message"]


class FullDisk(io.StringIO):
    def write(self, text: str) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    def flush(self) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")


def test_a_run_log_the_disk_refuses_is_never_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A full disk under run.log: the line is lost quietly (the run says what the disk refused where it
    matters), and closing the log raises nothing."""
    logs.configure(secrets=[], verbose=False)
    handler = logs.add_run_log(tmp_path, logs.RedactFilter([]))
    assert isinstance(handler, logging.StreamHandler)
    handler.stream.close()
    handler.stream = FullDisk()
    logging.getLogger("batchgen.test").info("a line the disk refuses")
    logs.remove_handler(handler)
    assert "Traceback" not in capsys.readouterr().err


@pytest.mark.parametrize("created", [1795931639.3995, 1795931639.9996, 1795931639.0004])
def test_a_log_lines_two_times_name_the_same_millisecond(created: float) -> None:
    """`time` (for people) and `t` (for programs) come from one rounding: never a millisecond apart."""
    record = logging.LogRecord("batchgen.test", logging.INFO, __file__, 1, "m", None, None)
    record.created = created
    line = json.loads(logs.JsonLines().format(record))
    assert datetime.fromisoformat(line["time"]).timestamp() == pytest.approx(line["t"], abs=1e-6)
