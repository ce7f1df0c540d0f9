"""`HttpClient`: one gpuwatch daemon, read through its JSON API (docs/api.md).

Place in the flow: daemon's `/api/v1/` → **HttpClient** → TUI (the `gpuwatch.client.protocol.Client`
protocol). `gpuwatch top --connect URL` builds one per daemon; the dashboard calls it from
worker threads only, so every call may block, but never for long: a worker thread cannot be
interrupted, and quitting waits for the ones in flight. Hence short timeouts (1 s to connect,
2 s per read, 4 s for a whole answer), a bounded answer size, no retry except one after a
keep-alive connection the daemon had closed, and connections kept alive between refreshes.

Every failure below the client is translated here, at one boundary, into the error tree of
`gpuwatch.client.protocol`, with one line for the screen:

    refused, unreachable, timed out, TLS refused,   SourceUnavailableError
    5xx, an answer that is not the API's JSON,
    a snapshot older than the daemon's clock allows
    503 with code "not_ready" (just started)        NotReadyError
    401 / 403                                       AuthenticationError ("set [top] token_file")
    400 naming an unknown series                    series.UnknownSeriesError

Staleness: a daemon whose engine stopped ticking still answers, with its last snapshot. The
snapshot's timestamp is compared with the daemon's own `Date` header (its clock, not ours, so
clock skew between hosts does not matter), and with how long we have been handed the same
timestamp; past `stale_after_seconds` (at least three ticks) the node reads stale.
"""

from __future__ import annotations

import email.utils
import errno
import json
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from gpuwatch import __version__, jsonform, model, series
from gpuwatch.client.connect import DEFAULT_PORT, parse_daemon_url
from gpuwatch.client.protocol import (
    AuthenticationError,
    ClientError,
    NotReadyError,
    SourceUnavailableError,
)

CONNECT_TIMEOUT_SECONDS = 1.0
READ_TIMEOUT_SECONDS = 2.0
DEADLINE_SECONDS = 4.0
"""The longest one call may take, however the daemon dribbles its answer."""
MAX_RESPONSE_BYTES = 16 << 20
STALE_AFTER_SECONDS = 5.0
STALE_AFTER_TICKS = 3
MAX_CONNECTIONS = 4
"""Per daemon: the feed, and the sparkline, event and chart fetches of an open dashboard."""
NOT_READY_CODE = "not_ready"
"""The `code` of the API's 503 before the first tick (docs/api.md)."""
NOT_READY_PREFIX = "no snapshot yet"
"""How that answer's message begins: a daemon of 0.1.0 gave no code, only this text."""
UNKNOWN_SERIES_CODE = "unknown_series"
"""The `code` of /history's 400 for a series name the daemon does not have."""
UNKNOWN_SERIES_TEXT = "is not a series"
"""What that answer's message says: a daemon of 0.1.0 gave no code, only this text."""


# --------------------------------------------------------------------------- the client


@dataclass(frozen=True, slots=True)
class _Answer:
    status: int
    headers: httpx.Headers
    body: bytes


class HttpClient:
    """A daemon at `url` (see `connect.parse_daemon_url`); `verify` from `connect.tls_context`.
    Thread-safe; call `close()` once."""

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        name: str | None = None,
        verify: ssl.SSLContext | None = None,
        connect_timeout_seconds: float = CONNECT_TIMEOUT_SECONDS,
        read_timeout_seconds: float = READ_TIMEOUT_SECONDS,
        deadline_seconds: float = DEADLINE_SECONDS,
        max_response_bytes: int = MAX_RESPONSE_BYTES,
        stale_after_seconds: float = STALE_AFTER_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = parse_daemon_url(url)
        parts = urlsplit(self.url)
        self._name = name or parts.netloc.removesuffix(f":{DEFAULT_PORT}")
        self._connect_timeout = connect_timeout_seconds
        self._read_timeout = read_timeout_seconds
        self._deadline = deadline_seconds
        self._max_bytes = max_response_bytes
        self._stale_after = stale_after_seconds
        self._monotonic = monotonic
        headers = {"User-Agent": f"gpuwatch-top/{__version__}", "Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._token_sent = bool(token)
        self._http = httpx.Client(
            base_url=self.url + "/api/v1/",
            headers=headers,
            timeout=httpx.Timeout(
                read_timeout_seconds, connect=connect_timeout_seconds, pool=connect_timeout_seconds
            ),
            limits=httpx.Limits(
                max_connections=MAX_CONNECTIONS,
                max_keepalive_connections=MAX_CONNECTIONS,
                keepalive_expiry=5.0,
            ),
            verify=verify if verify is not None else True,
            follow_redirects=False,
            trust_env=False,  # a proxy from the environment has no business between us and a node
        )
        self._lock = threading.Lock()
        self._seen: tuple[float, float] | None = None
        """(snapshot timestamp, our monotonic time when we were first handed it)."""

    @property
    def name(self) -> str:
        return self._name

    @property
    def origin(self) -> str:
        return f"daemon {self.url}"

    # -- the protocol ------------------------------------------------------------------------

    def snapshot(self) -> model.Snapshot:
        answer = self._get("snapshot", {})
        if answer.status == 503:
            message, code = _error_message(answer), _error_code(answer)
            if code == NOT_READY_CODE or (code is None and message.startswith(NOT_READY_PREFIX)):
                raise NotReadyError("the daemon is starting: no snapshot yet")
            raise SourceUnavailableError(f"HTTP 503: {message}")
        doc = self._json(answer)
        try:
            snapshot = jsonform.decode_snapshot(doc)
        except jsonform.DecodeError as exc:
            raise SourceUnavailableError(f"not a gpuwatch snapshot: {exc}") from None
        self._check_fresh(snapshot, answer)
        return snapshot

    def history(
        self, name: str, match: Mapping[str, str], start: float, end: float, points: int
    ) -> list[series.SeriesData]:
        params = {"series": name, "from": repr(start), "to": repr(end), "points": str(points), **match}
        answer = self._get("history", params)
        if answer.status == 400:
            message, code = _error_message(answer), _error_code(answer)
            if code == UNKNOWN_SERIES_CODE or (code is None and UNKNOWN_SERIES_TEXT in message):
                raise series.UnknownSeriesError(name)
            raise ClientError(f"the daemon refused the history request: {message}")
        try:
            return jsonform.decode_history(self._json(answer))
        except jsonform.DecodeError as exc:
            raise SourceUnavailableError(f"not a gpuwatch history answer: {exc}") from None

    def events(
        self,
        start: float,
        end: float,
        kinds: Iterable[model.EventKind] | None = None,
        limit: int = 200,
    ) -> list[model.Event]:
        params = {"from": repr(start), "to": repr(end), "limit": str(limit)}
        if kinds is not None:
            chosen = [k.value for k in kinds]
            if not chosen:
                return []
            params["kinds"] = ",".join(chosen)
        answer = self._get("events", params)
        if answer.status == 400:
            raise ClientError(f"the daemon refused the events request: {_error_message(answer)}")
        doc = self._json(answer)
        try:
            return [jsonform.decode(model.Event, e, f"$.events[{i}]") for i, e in enumerate(doc["events"])]
        except (KeyError, TypeError, jsonform.DecodeError) as exc:
            raise SourceUnavailableError(f"not a gpuwatch events answer: {exc}") from None

    def close(self) -> None:
        self._http.close()

    # -- HTTP --------------------------------------------------------------------------------

    def _get(self, path: str, params: Mapping[str, str]) -> _Answer:
        """GET one endpoint; any status comes back, except the ones every endpoint shares
        (401/403, 404, 5xx), which raise here."""
        try:
            answer = self._fetch(path, params)
        except (httpx.RemoteProtocolError, httpx.ReadError):
            # A keep-alive connection the daemon had closed (its idle deadline, or a restart):
            # a GET may be sent again once. A daemon that is gone fails the retry to connect.
            try:
                answer = self._fetch(path, params)
            except httpx.HTTPError as exc:
                raise SourceUnavailableError(self._reason(exc)) from None
        except httpx.HTTPError as exc:
            raise SourceUnavailableError(self._reason(exc)) from None
        status = answer.status
        if status in (401, 403):
            if self._token_sent:
                raise AuthenticationError(
                    f"authentication failed: the daemon refused the token (HTTP {status}); "
                    "check [top] token_file"
                )
            raise AuthenticationError(
                f"authentication failed: the daemon requires a token (HTTP {status}); set [top] token_file"
            )
        if status == 404:
            raise SourceUnavailableError(
                f"not a gpuwatch daemon (or an older one): {self.url}/api/v1/{path} answers 404"
            )
        if status >= 500 and status != 503:
            raise SourceUnavailableError(f"HTTP {status}: {_error_message(answer)}")
        if status not in (200, 400, 503):
            raise SourceUnavailableError(f"HTTP {status} from {self.url}/api/v1/{path}")
        return answer

    def _fetch(self, path: str, params: Mapping[str, str]) -> _Answer:
        deadline = self._monotonic() + self._deadline
        with self._http.stream("GET", path, params=params) as response:
            length = response.headers.get("content-length")
            if length is not None and length.isdigit() and int(length) > self._max_bytes:
                raise SourceUnavailableError(self._too_large())
            body = bytearray()
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > self._max_bytes:
                    raise SourceUnavailableError(self._too_large())
                if self._monotonic() > deadline:
                    raise SourceUnavailableError(f"no whole answer within {self._deadline:g} s")
            return _Answer(response.status_code, response.headers, bytes(body))

    def _too_large(self) -> str:
        return f"answer larger than {self._max_bytes / (1 << 20):g} MiB: not a gpuwatch daemon?"

    def _json(self, answer: _Answer) -> Any:
        try:
            return json.loads(answer.body)
        except (UnicodeDecodeError, json.JSONDecodeError):
            kind = answer.headers.get("content-type", "no content type")
            raise SourceUnavailableError(f"not a gpuwatch daemon: the answer is not JSON ({kind})") from None

    def _reason(self, exc: httpx.HTTPError) -> str:
        """One line for the screen: what went wrong between us and the daemon."""
        if isinstance(exc, httpx.ConnectTimeout):
            return f"no connection within {self._connect_timeout:g} s"
        if isinstance(exc, httpx.PoolTimeout):
            return "too many requests to this daemon in flight"
        if isinstance(exc, httpx.TimeoutException):
            return f"no answer within {self._read_timeout:g} s"
        if isinstance(exc, httpx.RemoteProtocolError):
            return "the daemon closed the connection without a whole answer"
        if isinstance(exc, httpx.ConnectError):
            return _connect_reason(exc)
        return f"{type(exc).__name__}: {exc}"

    # -- staleness ---------------------------------------------------------------------------

    def _check_fresh(self, snapshot: model.Snapshot, answer: _Answer) -> None:
        now = self._monotonic()
        with self._lock:
            if self._seen is None or self._seen[0] != snapshot.timestamp:
                self._seen = (snapshot.timestamp, now)
            unchanged_for = now - self._seen[1]
        age = unchanged_for
        server_now = _date(answer.headers.get("date"))
        if server_now is not None:
            # Date has whole seconds, truncated: the daemon's clock read at least this much.
            age = max(age, server_now - snapshot.timestamp)
        limit = max(self._stale_after, STALE_AFTER_TICKS * _tick_seconds(snapshot))
        if age > limit:
            raise SourceUnavailableError(
                f"no new snapshot for {age:.0f} s: the daemon's engine has stopped ticking"
            )


def _date(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None


def _tick_seconds(snapshot: model.Snapshot) -> float:
    """The daemon's tick, as its fastest collector's cadence says (1 s unless configured)."""
    cadences = [c.cadence_seconds for c in snapshot.collectors if c.cadence_seconds > 0]
    return min(cadences) if cadences else 1.0


def _error_doc(answer: _Answer) -> dict[str, Any]:
    """The API's error object, or {} when the body is something else."""
    try:
        doc = json.loads(answer.body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return {}
    return doc if isinstance(doc, dict) else {}


def _error_message(answer: _Answer) -> str:
    """The API's {"error": ...} text, or the start of whatever else came back."""
    message = _error_doc(answer).get("error")
    if isinstance(message, str):
        return message
    text = answer.body[:120].decode("utf-8", errors="replace").strip()
    return " ".join(text.split()) or "no message"


def _error_code(answer: _Answer) -> str | None:
    """The API's machine-readable {"code": ...}, where the daemon gives one."""
    code = _error_doc(answer).get("code")
    return code if isinstance(code, str) else None


def _connect_reason(exc: httpx.ConnectError) -> str:
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ssl.SSLCertVerificationError):
            return f"TLS: the daemon's certificate is not trusted ({cause.verify_message}): set [top] ca_file"
        if isinstance(cause, ssl.SSLError):
            return f"TLS: {cause.reason or cause}"
        if isinstance(cause, OSError) and cause.errno is not None:
            if cause.errno == errno.ECONNREFUSED:
                return "connection refused"
            return f"cannot connect: {(cause.strerror or str(cause)).lower()}"
        cause = cause.__cause__ or cause.__context__
    return f"cannot connect: {exc}"


__all__ = ["HttpClient"]
