"""The daemon under abuse and on bad days (issue #15), against real daemon processes.

Each test reproduces one finding against `gpuwatch daemon --demo` (tests/daemons.py) on
127.0.0.1 and states the figure it measured. Floods are bounded in count and time.
"""

from __future__ import annotations

import time
from pathlib import Path

from tests.daemons import Daemon


def test_default_logs_are_quiet_and_say_what_happened_in_words(tmp_path: Path) -> None:
    """httpx logged every Triton request at INFO (~4 lines a second per server); the NVML
    collector logged `field_91 is not available`. At the default log level the libraries say
    nothing below WARNING, and each line names the figure in words; at debug they speak."""
    daemon = Daemon()
    try:
        time.sleep(3)  # three ticks, each polling the recorded Triton server ~5 requests
    finally:
        daemon.stop()
    log = "".join(daemon.log)
    assert " httpx: " not in log and " httpcore" not in log, log
    assert "field_91" not in log
    assert "the NVLink link count (NVLink rates are not shown), NVML field 91 is not available" in log
    lines = [line for line in daemon.log if line.strip()]
    assert len(lines) < 30, f"{len(lines)} log lines in 3 s:\n{log}"

    config = tmp_path / "debug.toml"
    config.write_text('[daemon]\nlog_level = "debug"\n')
    loud = Daemon(config=config)
    try:
        time.sleep(1.5)
    finally:
        loud.stop()
    assert " httpx: HTTP Request: GET http://127.0.0.1:8000" in "".join(loud.log)
