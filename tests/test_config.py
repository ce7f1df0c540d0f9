"""config.toml → typed settings, and the errors a person sees."""

import os
from pathlib import Path

import pytest

from gpuwatch import config
from tests.conftest import REPO, run_gpuwatch


def test_shipped_config_lists_every_setting_at_its_default() -> None:
    assert (REPO / "config.toml").read_text() == config.render_defaults()
    assert config.load(REPO / "config.toml") == config.Settings()


def test_every_setting_has_a_comment() -> None:
    lines = (REPO / "config.toml").read_text().splitlines()
    for i, line in enumerate(lines):
        if "=" in line and not line.startswith("#"):
            assert lines[i - 1].startswith("# "), f"no comment above: {line}"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "[nvml]\ninterval_seconds = -1\n",
            "[nvml] interval_seconds = -1: expected a number from 0.1 to 3600",
        ),
        ('[nvml]\ninterval_seconds = "fast"\n', "[nvml] interval_seconds = 'fast': expected a number"),
        ("[nvml]\nintreval_seconds = 1\n", "unknown key [nvml] intreval_seconds = 1: expected one of"),
        ("[nvlm]\n", "unknown key [nvlm]"),
        ('[daemon]\nlog_level = "loud"\n', "[daemon] log_level = 'loud': expected one of debug, info"),
        ("[triton]\n[[triton.servers]]\nurl = 8000\n", "[triton] servers[0].url = 8000: expected a string"),
        ('[top]\nconnect = "http://a"\n', "[top] connect = 'http://a': expected a list"),
        ("[demo]\ngpus = 2.5\n", "[demo] gpus = 2.5: expected an integer"),
        ("[nvml]\ngpm = 1\n", "[nvml] gpm = 1: expected true or false"),
        ("[nvml\n", "not valid TOML"),
        ("[nvml]\ninterval_seconds = nan\n", "[nvml] interval_seconds = nan: expected a number from 0.1"),
        ("[nvml]\ninterval_seconds = inf\n", "[nvml] interval_seconds = inf: expected a number from 0.1"),
        ("[store]\nsize_budget_bytes = -inf\n", "[store] size_budget_bytes = -inf: expected an integer"),
        ('[[triton.servers]]\nurl = "ftp://x"\n', "servers[0].url = 'ftp://x': expected an http:// or"),
        ('[[triton.servers]]\nurl = "http://[::1"\n', "servers[0].url = 'http://[::1': expected an http"),
        ('[[triton.servers]]\nmetrics_url = "http://h:99999/m"\n', "servers[0].metrics_url = 'http://h:9"),
        ('[[triton.servers]]\nurl = "http://:8000"\n', "(no host)"),
    ],
)
def test_errors_name_the_file_key_value_and_expectation(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "gpuwatch.toml"
    path.write_text(text)
    with pytest.raises(config.ConfigError) as err:
        config.load(path)
    message = str(err.value)
    assert message.startswith(f"{path}: ")
    assert expected in message
    assert "\n" not in message


def test_valid_overrides_are_read(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(
        '[nvml]\ninterval_seconds = 2\n[[triton.servers]]\nname = "a"\nurl = "http://10.0.0.1:8000"\n'
        'headers = { "X-Api-Key" = "k" }\n'
    )
    settings = config.load(path)
    assert settings.nvml.interval_seconds == 2.0 and isinstance(settings.nvml.interval_seconds, float)
    servers, implicit = settings.triton_servers()
    assert (
        not implicit and servers[0].url == "http://10.0.0.1:8000" and servers[0].headers == {"X-Api-Key": "k"}
    )
    assert config.Settings().triton_servers()[1] is True


def test_config_check_cli_exit_codes(tmp_path: Path) -> None:
    good = tmp_path / "good.toml"
    good.write_text("[nvml]\ninterval_seconds = 2\n")
    ok = run_gpuwatch("config", "check", str(good))
    assert ok.returncode == 0 and "ok" in ok.stdout
    bad = tmp_path / "bad.toml"
    bad.write_text("[nvml]\ninterval_seconds = 0\n")
    result = run_gpuwatch("config", "check", str(bad))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert "interval_seconds = 0" in result.stderr
    missing = run_gpuwatch("config", "check", str(tmp_path / "nope.toml"))
    assert missing.returncode == 2 and "no such file" in missing.stderr


def test_a_broken_config_stops_snapshot_with_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[store]\nretention = 5\n")
    result = run_gpuwatch("snapshot", "--demo", "--config", str(bad))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "[store] retention = 5: expected a string" in result.stderr
    via_env = run_gpuwatch("snapshot", "--demo", env={"GPUWATCH_CONFIG": str(bad)})
    assert via_env.returncode == 2


# --------------------------------------------------------------------------- files a setting names


def test_a_setting_file_is_read_only_if_small_and_regular(tmp_path: Path) -> None:
    """`/dev/zero` was read without limit (3.9 GB in 17 s) and a FIFO hung the start: both are
    refused before a byte is read; a file over the limit is read only to the limit + 1."""
    small = tmp_path / "token"
    small.write_bytes(b"x" * 100)
    assert config.read_setting_file(small) == b"x" * 100
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)  # nobody writes it: a blocking open would never return
    with pytest.raises(config.SettingFileError, match="is a FIFO, not a regular file"):
        config.read_setting_file(fifo)
    with pytest.raises(config.SettingFileError, match="is a device, not a regular file"):
        config.read_setting_file(Path("/dev/zero"))
    with pytest.raises(config.SettingFileError, match="is a directory"):
        config.read_setting_file(tmp_path)
    big = tmp_path / "big"
    big.write_bytes(b"y" * (config.SECRET_FILE_MAX_BYTES + 1))
    with pytest.raises(config.SettingFileError, match="larger than 65536 bytes"):
        config.read_setting_file(big)
    with pytest.raises(FileNotFoundError):
        config.read_setting_file(tmp_path / "nope")


DAEMON_REFUSES = [
    ('[store]\nretention = "forever"\n', "[store] retention = 'forever'"),
    ('[store]\nretention = "1s:-24h"\n', "[store] retention = '1s:-24h'"),
    ('[store]\nretention = ""\n', "[store] retention = '': expected tiers"),
    ('[daemon]\nlisten = "127.0.0.1:99999"\n', "port 99999 is not from 0 to 65535"),
    ('[daemon]\nlisten = "0.0.0.0:9477"\n', "refusing to listen on 0.0.0.0:9477 without authentication"),
    ('[daemon]\nbearer_token_file = "/dev/zero"\n', "bearer_token_file /dev/zero: is a device"),
    ('[daemon]\nbasic_auth_file = "/dev/zero"\n', "basic_auth_file /dev/zero: is a device"),
    ('[daemon]\ntls_cert_file = "/dev/zero"\ntls_key_file = "/dev/zero"\n', "tls_cert_file /dev/zero: is a"),
    ('[daemon]\nbearer_token_file = "FIFO"\n', "is a FIFO, not a regular file"),
]


@pytest.mark.parametrize(("text", "expected"), DAEMON_REFUSES)
def test_config_check_refuses_what_the_daemon_refuses(tmp_path: Path, text: str, expected: str) -> None:
    """Each of these was `ok` to `config check` and then refused (or fatal) at the daemon's
    start: both now run `daemon.check`, and say the same one line with exit 2."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    path = tmp_path / "c.toml"
    path.write_text(
        text.replace("FIFO", str(fifo)) + f'state_dir = "{tmp_path}"\n' * text.startswith("[daemon]")
    )
    checked = run_gpuwatch("config", "check", str(path), timeout=20)
    assert checked.returncode == 2, checked.stdout
    assert expected in checked.stderr and checked.stderr.count("\n") == 1
    assert "Traceback" not in checked.stderr
    started = run_gpuwatch(
        "daemon", "--demo", "--config", str(path), "--db", str(tmp_path / "g.db"), timeout=20
    )
    assert started.returncode == 2 and started.stderr == checked.stderr


def test_a_repeated_log_line_is_let_through_once_per_window_then_counted() -> None:
    import io
    import logging

    from gpuwatch.errors import RepeatedLines

    now = [0.0]
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.addFilter(RepeatedLines(window_seconds=600, clock=lambda: now[0]))
    log = logging.getLogger("gpuwatch.test.repeats")
    log.addHandler(handler)
    log.propagate = False
    try:
        for second in range(300):  # a collector failing every second for five minutes
            now[0] = float(second)
            try:
                raise RuntimeError("boom")
            except RuntimeError:
                log.exception("job %s failed", "nvml")
            log.error("GPU %d lost", 1)
            log.error("GPU %d lost", 2)  # another GPU is another line
        text = out.getvalue()
        assert text.count("Traceback") == 1 and text.count("job nvml failed") == 1
        assert text.count("GPU 1 lost") == 1 and text.count("GPU 2 lost") == 1
        now[0] = 600.0
        log.error("GPU %d lost", 1)
        assert out.getvalue().splitlines()[-1] == "GPU 1 lost (and 299 more like it in the last 600 s)"
    finally:
        log.removeHandler(handler)


def test_the_command_line_logs_each_repeated_line_once() -> None:
    code = (
        "import logging, sys; from gpuwatch import cli; cli.configure_logging('WARNING'); "
        "[logging.getLogger('gpuwatch.x').warning('Triton %s down', 'a') for _ in range(50)]"
    )
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True, cwd=REPO, timeout=60
    )
    assert done.stderr.count("Triton a down") == 1, done.stderr
