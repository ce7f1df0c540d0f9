"""What `gpuwatch top` reads: daemon URLs, the token and CA files, and the local daemon's probe
(against real daemons, one of them wanting a token)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest

from gpuwatch import config
from gpuwatch.client.connect import (
    DaemonUrlError,
    local_daemon_url,
    parse_daemon_url,
    plan,
    probe,
    read_token_file,
    tls_context,
)
from tests.daemons import Daemon, unused_port

TOKEN = "s3cret-token-for-the-tests-0123456789"


@pytest.mark.parametrize(
    ("given", "url"),
    [
        ("gpu-node-02", "http://gpu-node-02:9477"),
        ("gpu-node-02:9000", "http://gpu-node-02:9000"),
        (" HTTP://GPU-Node-02:9477/ ", "http://gpu-node-02:9477"),
        ("https://gpuwatch.example.com", "https://gpuwatch.example.com"),
        ("https://proxy.example.com:8443/nodes/02/", "https://proxy.example.com:8443/nodes/02"),
        ("[::1]:9477", "http://[::1]:9477"),
        ("10.0.0.7", "http://10.0.0.7:9477"),
    ],
)
def test_daemon_urls_are_normalized(given: str, url: str) -> None:
    assert parse_daemon_url(given) == url


@pytest.mark.parametrize(
    ("given", "says"),
    [
        ("ftp://gpu-node-02", "expected an http:// or https:// URL"),
        ("http://", "no host in the URL"),
        ("http://gpu-node-02:99999", "the port is not a number from 1 to 65535"),
        ("http://gpu-node-02:0", "the port is not a number from 1 to 65535"),
        ("gpu-node-02:port", "the port is not a number from 1 to 65535"),
        ("http://admin:hunter2@gpu-node-02", "credentials in a URL show in `ps`"),
        ("http://gpu-node-02:9477/?x=1", "without ?query or #fragment"),
        ("http://[::1", "Invalid IPv6 URL"),
    ],
)
def test_bad_daemon_urls_say_what_is_wrong(given: str, says: str) -> None:
    with pytest.raises(DaemonUrlError) as caught:
        parse_daemon_url(given)
    assert str(caught.value).startswith(repr(given) + ": ") and says in str(caught.value)
    assert "\n" not in str(caught.value)


def test_token_file(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text(f"  {TOKEN}\n")
    assert read_token_file(path) == TOKEN
    for content, says in (("", "expected one token"), ("two words", "expected one token")):
        path.write_text(content)
        with pytest.raises(DaemonUrlError, match=f"token_file {path}: {says}"):
            read_token_file(path)
    with pytest.raises(DaemonUrlError, match="no such file"):
        read_token_file(tmp_path / "absent")
    with pytest.raises(DaemonUrlError, match="token_file /dev/zero: is a device, not a regular file"):
        read_token_file("/dev/zero")


def test_ca_file(tmp_path: Path) -> None:
    with pytest.raises(DaemonUrlError, match=r"\[top\] ca_file .*: no such file"):
        tls_context(str(tmp_path / "absent.pem"))
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate")
    with pytest.raises(DaemonUrlError, match="not a PEM certificate bundle"):
        tls_context(str(garbage))


def _settings(**top: object) -> config.Settings:
    return dataclasses.replace(config.Settings(), top=dataclasses.replace(config.TopSettings(), **top))


def _listening(listen: str, **daemon: object) -> config.Settings:
    return dataclasses.replace(
        config.Settings(), daemon=dataclasses.replace(config.DaemonSettings(), listen=listen, **daemon)
    )


def test_local_daemon_url_from_its_listen_setting() -> None:
    assert local_daemon_url(config.Settings()) == "http://127.0.0.1:9477"
    assert local_daemon_url(_listening("0.0.0.0:9100")) == "http://127.0.0.1:9100"
    assert local_daemon_url(_listening(":9100")) == "http://127.0.0.1:9100"
    assert local_daemon_url(_listening("[::]:9100")) == "http://127.0.0.1:9100"
    assert local_daemon_url(_listening("[::1]:9100")) == "http://[::1]:9100"
    assert local_daemon_url(_listening("10.1.2.3:9100", tls_cert_file="/c.pem")) == "https://10.1.2.3:9100"
    assert local_daemon_url(_listening("127.0.0.1:0")) is None  # a daemon on port 0 announces its own
    assert local_daemon_url(_listening("nonsense")) is None


def test_named_daemons_come_first_and_demo_reads_none(tmp_path: Path) -> None:
    settings = _settings(connect=["gpu-node-01", "http://gpu-node-02:9477"])
    assert plan(None, settings, demo=False).urls == ("http://gpu-node-01:9477", "http://gpu-node-02:9477")
    chosen = plan(["gpu-node-03", "http://gpu-node-03:9477"], settings, demo=False)
    assert chosen.urls == ("http://gpu-node-03:9477",)  # --connect replaces the config; duplicates go
    assert chosen.token is None and chosen.verify is None
    assert plan(["https://gpu-node-04"], settings, demo=False).verify is not None
    assert plan(None, settings, demo=True).urls == ()  # --demo is in-process, whatever the config
    with pytest.raises(DaemonUrlError, match=r"^--connect 'ftp://x': expected"):
        plan(["ftp://x"], settings, demo=False)
    with pytest.raises(DaemonUrlError, match=r"^\[top\] connect 'ftp://x': expected"):
        plan(None, _settings(connect=["ftp://x"]), demo=False)
    with pytest.raises(DaemonUrlError, match=r"^\[top\] token_file .*: no such file"):
        plan(["gpu-node-01"], _settings(token_file=str(tmp_path / "absent")), demo=False)


@pytest.fixture(scope="module")
def daemon() -> Iterator[Daemon]:
    d = Daemon()
    yield d
    d.stop()


def test_the_local_daemon_is_read_when_it_answers(daemon: Daemon) -> None:
    here = _listening(f"127.0.0.1:{daemon.port}")
    assert probe(daemon.url, None, None)
    assert plan(None, here, demo=False).urls == (daemon.url,)
    assert plan(None, here, demo=True).urls == ()
    nobody = _listening(f"127.0.0.1:{unused_port()}")
    assert plan(None, nobody, demo=False).urls == ()


def test_a_local_daemon_that_wants_a_token_is_read_only_with_it(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    path = tmp_path / "config.toml"
    path.write_text(f'[daemon]\nbearer_token_file = "{token_file}"\n')
    daemon = Daemon(config=path, token=TOKEN)
    try:
        here = _listening(f"127.0.0.1:{daemon.port}", bearer_token_file=str(token_file))
        assert plan(None, here, demo=False).urls == ()  # 401 to us: in-process
        with_token = dataclasses.replace(here, top=dataclasses.replace(here.top, token_file=str(token_file)))
        chosen = plan(None, with_token, demo=False)
        assert chosen.urls == (daemon.url,) and chosen.token == TOKEN
    finally:
        daemon.stop()
