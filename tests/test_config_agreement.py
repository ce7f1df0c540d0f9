"""`gpuwatch config check` and `gpuwatch daemon` agree on every config (hypothesis).

Both run `daemon.check` (the one validation); this test holds them to it over generated configs
mixing good values with each kind the daemon used to refuse after `config check` said ok
(retention strings, listen addresses, NaN and infinities, Triton URLs, secret files that are
devices, FIFOs or too big). The daemon's side is the real start: `cli.main(["daemon", …])` binds
a real socket on 127.0.0.1 (port 0) and opens a real SQLite file; only its serving loop is
replaced by an immediate clean stop.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from gpuwatch import cli, daemon

TOKEN = "0123456789abcdef0123456789abcdef"


def _mostly(good: st.SearchStrategy[Any], bad: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Good three times in four, so that about a quarter of the configs are accepted whole."""
    return st.integers(0, 3).flatmap(lambda i: bad if i == 0 else good)


LISTEN = _mostly(
    st.sampled_from(["127.0.0.1:0", "[::1]:0", "localhost:0", " 127.0.0.1:0"]),
    st.sampled_from(["127.0.0.1:99999", "0.0.0.0:0", ":0", "nohost", "1.2.3.4:x", "::1:0", "127.0.0.1:-1"]),
)
RETENTION = _mostly(
    st.sampled_from(["1s:24h,1m:30d,1h:1y", "1s:1h", "1s:1d,1m:7d", " 1s:2h , 1m:1d "]),
    st.one_of(
        st.sampled_from(["forever", "1s:-24h", "", "1m:1h,1s:1d", "1s:1m,1m:1h", "1.5s:1h"]),
        st.text(alphabet="1smhdy:,- ", max_size=12),
    ),
)
SECONDS = _mostly(
    st.floats(min_value=0.1, max_value=3600),
    st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([math.nan, math.inf, 0.0])),
)
URL = _mostly(
    st.sampled_from(["http://127.0.0.1:1", "https://h:8000", "http://[::1]:8000"]),
    st.sampled_from(["ftp://x", "http://[::1", "http://:8000", "x", "http://h:99999", "http://h:0"]),
)
SECRET = _mostly(st.sampled_from(["", "token"]), st.sampled_from(["short", "zero", "fifo", "big"]))


def _toml(value: Any) -> str:
    if isinstance(value, float):
        return (
            "nan"
            if math.isnan(value)
            else ("inf" if value > 0 else "-inf")
            if math.isinf(value)
            else repr(value)
        )
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


@contextlib.contextmanager
def _secrets() -> Iterator[dict[str, str]]:
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        (d / "token").write_text(TOKEN + "\n")
        (d / "short").write_text("abc\n")
        (d / "big").write_bytes(b"a" * 100_000)
        os.mkfifo(d / "fifo")
        yield {
            "": "",
            "token": str(d / "token"),
            "short": str(d / "short"),
            "zero": "/dev/zero",
            "fifo": str(d / "fifo"),
            "big": str(d / "big"),
        }


def _run(argv: list[str]) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = cli.main(argv)
    return code, err.getvalue()


SERVED: list[str] = []


def _stop_at_once(self: daemon.Daemon, install_signals: bool = True) -> None:
    """The daemon's serving loop, replaced: it is bound and its store is open; stop cleanly."""
    SERVED.append(self.url)
    self.server.stop()
    self.engine.stop()
    self.store.close()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(listen=LISTEN, retention=RETENTION, interval=SECONDS, url=URL, secret=SECRET)
def test_config_check_and_the_daemons_start_agree(
    listen: str, retention: str, interval: float, url: str, secret: str
) -> None:
    with _secrets() as files, tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "c.toml"
        path.write_text(
            f"[nvml]\ninterval_seconds = {_toml(interval)}\n"
            f"[daemon]\nlisten = {_toml(listen)}\nstate_dir = {_toml(tmp)}\n"
            f"bearer_token_file = {_toml(files[secret])}\n"
            f"[store]\nretention = {_toml(retention)}\n"
            f"[[triton.servers]]\nurl = {_toml(url)}\n"
        )
        checked = _run(["config", "check", str(path)])
        served = len(SERVED)
        with mock.patch.object(daemon.Daemon, "run", _stop_at_once):
            started = _run(["daemon", "--demo", "--config", str(path), "--db", str(Path(tmp) / "g.db")])
    event(f"exit {checked[0]}")
    assert checked[0] in (0, 2), checked
    assert started == checked, f"config check said {checked}, the daemon {started}"
    assert (len(SERVED) > served) == (checked[0] == 0), "the daemon must have bound and opened its store"
    if checked[0] == 2:
        assert checked[1].startswith("gpuwatch: ") and checked[1].count("\n") == 1
