"""Which nodes `gpuwatch top` reads: the daemons it is told of, else the local daemon if one
answers, else none (`gpuwatch.assemble` then runs the engine in this process).

Place in the flow: CLI → **connect** → `client.http.HttpClient` per daemon (built by
`assemble.top_clients`) → TUI. In order:
1. `--connect URL` (repeatable), else `[top] connect`: those daemons, every URL checked first
   (a bad one is one line, exit 2); one opens its dashboard, several the cluster view;
2. else the daemon this host's config describes (`[daemon] listen`, https when it has a TLS
   certificate) if `/api/v1/health` answers 200 within a fraction of a second;
3. else nothing: in-process. `--demo` always goes here, whatever the config says.

`--prometheus URL` (or `[top] prometheus`) reads the fleet through that Prometheus server
instead (`prometheus_plan`; `client.prometheus.PrometheusFleet`).

Also here, because they are settings rather than talk: what a daemon URL may be, the token
file and the CA bundle, and the same for Prometheus (its token, basic auth and CA files).
Nothing here imports httpx; the probe uses the standard library's
http.client, so when no daemon answers the in-process dashboard does not pay for importing an
HTTP client it will not use.
"""

from __future__ import annotations

import http.client
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from gpuwatch import config

DEFAULT_PORT = config.DEFAULT_PORT
PROBE_SECONDS = 0.3
WILDCARD_HOSTS = ("", "0.0.0.0", "::")


class DaemonUrlError(ValueError):
    """A daemon URL or a client setting gpuwatch cannot use; str() is one line with the fix."""


# --------------------------------------------------------------------------- settings


def parse_daemon_url(text: str) -> str:
    """A daemon's base URL, normalized: "gpu-node-02" → "http://gpu-node-02:9477".

    Without a scheme, http and port 9477 (gpuwatch's) are assumed; with one, the URL is taken
    as written (https://proxy.example reads port 443). A path prefix is kept (a reverse proxy).
    """
    raw = text.strip()
    assumed = "://" not in raw
    example = "e.g. http://gpu-node-02:9477"
    try:
        parts = urlsplit(("http://" + raw) if assumed else raw)
    except ValueError as exc:  # "http://[::1": Invalid IPv6 URL
        raise DaemonUrlError(f"{text!r}: {exc}, {example}") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise DaemonUrlError(f"{text!r}: expected an http:// or https:// URL, {example}")
    if parts.username is not None or parts.password is not None:
        raise DaemonUrlError(
            f"{text!r}: credentials in a URL show in `ps`: put a bearer token in [top] token_file"
        )
    host = parts.hostname
    if not host:
        raise DaemonUrlError(f"{text!r}: no host in the URL, {example}")
    try:
        port = parts.port
    except ValueError:
        raise DaemonUrlError(f"{text!r}: the port is not a number from 1 to 65535") from None
    if port == 0:
        raise DaemonUrlError(f"{text!r}: the port is not a number from 1 to 65535")
    if parts.query or parts.fragment:
        raise DaemonUrlError(f"{text!r}: expected a base URL without ?query or #fragment, {example}")
    if assumed and port is None:
        port = DEFAULT_PORT
    netloc = f"[{host}]" if ":" in host else host
    if port is not None:
        netloc += f":{port}"
    return f"{parts.scheme.lower()}://{netloc}{parts.path.rstrip('/')}"


def read_token_file(path: str | Path) -> str:
    """The bearer token in `path` ([top] token_file): one word, as the daemon's own file holds."""
    return _secret(str(path), "[top] token_file", expected="one token")


def tls_context(ca_file: str | None) -> ssl.SSLContext:
    """How https daemons are verified: the system's CAs, or only those in `ca_file`."""
    try:
        return ssl.create_default_context(cafile=str(Path(ca_file).expanduser()) if ca_file else None)
    except FileNotFoundError:
        raise DaemonUrlError(f"[top] ca_file {ca_file}: no such file") from None
    except (ssl.SSLError, OSError) as exc:
        raise DaemonUrlError(f"[top] ca_file {ca_file}: not a PEM certificate bundle: {exc}") from None


# --------------------------------------------------------------------------- what to read


@dataclass(frozen=True, slots=True)
class Plan:
    urls: tuple[str, ...]
    """Daemon base URLs to read; empty: run the engine in-process."""
    token: str | None
    verify: ssl.SSLContext | None
    """How https daemons are verified (None: no https URL, nothing to verify)."""


def plan(cli_urls: Sequence[str] | None, settings: config.Settings, *, demo: bool) -> Plan:
    """What to read. Raises DaemonUrlError (one line, naming the flag or setting) for a bad URL,
    token file or CA file."""
    if demo:
        return Plan((), None, None)
    named, where = (cli_urls, "--connect") if cli_urls else (settings.top.connect, "[top] connect")
    urls: list[str] = []
    for text in named:
        try:
            url = parse_daemon_url(text)
        except DaemonUrlError as exc:
            raise DaemonUrlError(f"{where} {exc}") from None
        if url not in urls:
            urls.append(url)
    token = read_token_file(settings.top.token_file) if settings.top.token_file else None
    if not urls:
        local = local_daemon_url(settings)
        verify = _verify(settings, local)
        if local is None or not probe(local, token, verify):
            return Plan((), None, None)
        urls = [local]
    return Plan(tuple(urls), token, _verify(settings, *urls))


def _verify(settings: config.Settings, *urls: str | None) -> ssl.SSLContext | None:
    if settings.top.ca_file or any(u and u.startswith("https:") for u in urls):
        return tls_context(settings.top.ca_file or None)
    return None


def local_daemon_url(settings: config.Settings) -> str | None:
    """Where this host's daemon listens, by `[daemon] listen` (a wildcard address is reached
    on 127.0.0.1); None when the setting is not an address a daemon could have started on."""
    host, sep, port_text = settings.daemon.listen.strip().rpartition(":")
    if not sep or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        return None
    host = host.removeprefix("[").removesuffix("]")
    if host in WILDCARD_HOSTS:
        host = "127.0.0.1"
    scheme = "https" if settings.daemon.tls_cert_file else "http"
    netloc = f"[{host}]" if ":" in host else host
    return f"{scheme}://{netloc}:{port_text}"


def probe(url: str, token: str | None, verify: ssl.SSLContext | None, timeout: float = PROBE_SECONDS) -> bool:
    """True when a gpuwatch daemon at `url` answers its health endpoint with 200 in time."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port
    connection: http.client.HTTPConnection
    if parts.scheme == "https":
        connection = http.client.HTTPSConnection(host, port, timeout=timeout, context=verify)
    else:
        connection = http.client.HTTPConnection(host, port, timeout=timeout)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        connection.request("GET", parts.path + "/api/v1/health", headers=headers)
        response = connection.getresponse()
        response.read(1 << 20)
        return response.status == 200 and response.getheader("Content-Type") == "application/json"
    except (OSError, http.client.HTTPException):
        return False
    finally:
        connection.close()


# --------------------------------------------------------------------------- a fleet through Prometheus


@dataclass(frozen=True, slots=True)
class PrometheusPlan:
    url: str
    """The Prometheus server's base URL (its /api/v1/ beneath)."""
    selector: str
    """Label matchers picking gpuwatch's targets, without braces: `job="gpuwatch"`."""
    token: str | None
    basic_auth: tuple[str, str] | None
    verify: ssl.SSLContext | None
    daemons: Plan
    """How a node opened from the fleet is read: the daemons' token and CA ([top] token_file)."""


def prometheus_plan(cli_url: str | None, settings: config.Settings) -> PrometheusPlan | None:
    """The Prometheus to read the fleet through (`--prometheus`, else `[top] prometheus`), or
    None when neither names one. Raises DaemonUrlError (one line) for a bad URL or file."""
    text, where = (cli_url, "--prometheus") if cli_url else (settings.top.prometheus, "[top] prometheus")
    if not text:
        return None
    top = settings.top
    raw = text.strip()
    url = raw if "://" in raw else "http://" + raw
    parts = urlsplit(url)
    problem = config.http_url_problem(url)
    if problem is None and (parts.username is not None or parts.password is not None):
        problem = "credentials in a URL show in `ps`: use [top] prometheus_basic_auth_file"
    if problem is None and (parts.query or parts.fragment):
        problem = "expected a base URL without ?query or #fragment"
    if problem:
        raise DaemonUrlError(f"{where} {text!r}: {problem}, e.g. http://prometheus:9090")
    selector = top.prometheus_selector.strip().removeprefix("{").removesuffix("}").strip()
    if "{" in selector or "}" in selector:
        raise DaemonUrlError(
            f"[top] prometheus_selector {top.prometheus_selector!r}: expected label matchers "
            'such as job="gpuwatch",cluster="a"'
        )
    token = (
        _secret(top.prometheus_token_file, "[top] prometheus_token_file")
        if top.prometheus_token_file
        else None
    )
    basic = None
    if top.prometheus_basic_auth_file:
        pair = _secret(top.prometheus_basic_auth_file, "[top] prometheus_basic_auth_file", spaces=True)
        user, sep, password = pair.partition(":")
        if not sep or not user:
            raise DaemonUrlError(
                f"[top] prometheus_basic_auth_file {top.prometheus_basic_auth_file}: expected USER:PASSWORD"
            )
        basic = (user, password)
    verify = None
    if top.prometheus_ca_file or url.startswith("https:"):
        try:
            verify = tls_context(top.prometheus_ca_file or None)
        except DaemonUrlError as exc:
            raise DaemonUrlError(str(exc).replace("[top] ca_file", "[top] prometheus_ca_file")) from None
    daemon_token = read_token_file(top.token_file) if top.token_file else None
    daemons = Plan((), daemon_token, tls_context(top.ca_file or None) if top.ca_file else None)
    return PrometheusPlan(url.rstrip("/"), selector, token, basic, verify, daemons)


def _secret(path: str, where: str, *, spaces: bool = False, expected: str = "one line") -> str:
    """A secret setting file's text, bounded and checked (`config.read_setting_file`), or one
    `DaemonUrlError` line naming the setting `where`."""
    try:
        text = config.read_setting_file(Path(path).expanduser()).decode("utf-8").strip()
    except FileNotFoundError:
        raise DaemonUrlError(f"{where} {path}: no such file") from None
    except config.SettingFileError as exc:
        raise DaemonUrlError(f"{where} {path}: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DaemonUrlError(
            f"{where} {path}: cannot read: {getattr(exc, 'strerror', None) or exc}"
        ) from None
    if not text or (not spaces and any(c.isspace() for c in text)) or "\n" in text:
        raise DaemonUrlError(f"{where} {path}: expected {expected}" + ("" if spaces else " without spaces"))
    return text
