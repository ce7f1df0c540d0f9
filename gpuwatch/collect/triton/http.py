"""Bounded HTTP for the Triton collector: every request under the poll's deadline and a byte cap.

Place in the flow: `poll.py` asks `BoundedFetcher.fetch` for each endpoint of a poll; this
module turns whatever the network and the server do into either the body's bytes or one
`FetchError` whose `reason` is a line a person can act on. It is the one place that knows
httpx's exception tree:

- `ConnectError` (refused, unreachable, DNS)        → kind "refused"
- any `TimeoutException`, or the poll deadline passed while reading → kind "timeout"
- an HTTP status that is not 2xx                     → kind "http" (the status and Triton's
  `{"error": ...}` text, or the first line of the body)
- a body longer than `max_bytes` (declared by Content-Length, or counted while reading: the
  body is streamed and reading stops at the cap, so memory stays bounded) → kind "too_large"
- any other transport or protocol failure            → kind "network"

The deadline is absolute (monotonic seconds) and shared by every request of one poll: each
request gets what is left of it as its connect/read/write timeouts, and the body is checked
against it after every chunk, so a server that stalls is cut off when the poll's time is up.

A kept-alive connection can stall while a new one answers (Triton 2.51 does so for seconds
while it loads a model). So a request given `retry_at` and sent on a client that has kept a
connection waits for its answer only until `retry_at`; if none came, the client's connections
are dropped and the request is sent once more, on a fresh connection, with what is left of
the deadline. Only a server that answers on neither is "no answer".
Responses are asked for uncompressed, so the cap counts the bytes that are held in memory.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from typing import Any

import httpx

KINDS = ("refused", "timeout", "http", "too_large", "network")


class FetchError(Exception):
    """One endpoint could not be read. `reason` is one line; `kind` is one of KINDS."""

    def __init__(self, kind: str, reason: str, status: int | None = None, *, reading: bool = False) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason
        self.status = status
        self.reading = reading
        """The server had answered: this failed while its body was read."""


class BoundedFetcher:
    """An httpx client that reads at most `max_bytes` per response, within a deadline."""

    def __init__(
        self,
        *,
        max_bytes: int,
        headers: dict[str, str] | None = None,
        transport: httpx.BaseTransport | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_bytes = max_bytes
        self._monotonic = monotonic
        base = {"Accept-Encoding": "identity", "User-Agent": "gpuwatch"}
        base.update(headers or {})
        self._headers = base
        self._transport = transport
        self._client = self._new_client()
        self._kept = False
        """A response came back on this client: it may hold a kept-alive connection."""
        self.fresh_retries = 0
        """Requests that got no answer on a kept-alive connection and were sent again."""

    def _new_client(self) -> httpx.Client:
        # No connection pool surprises: one keep-alive connection per host is all a poll uses.
        return httpx.Client(
            headers=self._headers,
            transport=self._transport,
            follow_redirects=False,
            limits=httpx.Limits(max_connections=4, max_keepalive_connections=4),
            trust_env=False,
        )

    def close(self) -> None:
        self._client.close()

    def fetch(
        self,
        method: str,
        url: str,
        deadline: float,
        *,
        json_body: Any = None,
        headers: dict[str, str] | None = None,
        retry_at: float | None = None,
    ) -> tuple[int, bytes]:
        """The status and body of a 2xx response, else FetchError. With `retry_at` (before the
        deadline), a request on a kept-alive connection unanswered by then is sent once more on
        a fresh connection (see the module docstring)."""
        start = self._monotonic()
        if retry_at is None or not self._kept or not start < retry_at < deadline:
            return self._fetch(method, url, deadline, deadline, json_body=json_body, headers=headers)
        try:
            return self._fetch(method, url, retry_at, deadline, json_body=json_body, headers=headers)
        except FetchError as exc:
            if exc.kind != "timeout" or exc.reading:
                raise
        self._client.close()  # drop the kept-alive connections: the next request opens one
        self._client = self._new_client()
        self._kept = False
        self.fresh_retries += 1
        try:
            return self._fetch(method, url, deadline, deadline, json_body=json_body, headers=headers)
        except FetchError as exc:
            if exc.kind == "timeout" and not exc.reading:
                raise FetchError(
                    "timeout", f"no answer within {deadline - start:.2g} s (also on a fresh connection)"
                ) from None
            raise

    def _fetch(
        self,
        method: str,
        url: str,
        answer_by: float,
        deadline: float,
        *,
        json_body: Any,
        headers: dict[str, str] | None,
    ) -> tuple[int, bytes]:
        """One request: its answer's head by `answer_by`, its body by `deadline`."""
        remaining = answer_by - self._monotonic()
        if remaining <= 0:
            raise FetchError("timeout", "no time left in this poll")
        timeout = httpx.Timeout(remaining)
        try:
            request = self._client.build_request(
                method,
                url,
                json=json_body,
                headers=headers,
                timeout=timeout,
            )
            response = self._client.send(request, stream=True)
        except httpx.ConnectError as exc:
            raise FetchError("refused", _connect_reason(exc)) from None
        except httpx.TimeoutException:
            raise FetchError("timeout", f"no answer within {remaining:.2g} s") from None
        except (httpx.HTTPError, OSError, ValueError) as exc:
            raise FetchError("network", _one_line(exc)) from None
        try:
            body = self._read(response, deadline, max(remaining, deadline - self._monotonic()))
        finally:
            response.close()
        self._kept = True
        if not 200 <= response.status_code < 300:
            raise FetchError(
                "http",
                f"HTTP {response.status_code} {response.reason_phrase}{_error_text(body)}",
                response.status_code,
            )
        return response.status_code, body

    def _read(self, response: httpx.Response, deadline: float, remaining: float) -> bytes:
        declared = response.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            raise FetchError(
                "too_large", f"response of {int(declared)} bytes is over the {_cap(self.max_bytes)} cap"
            )
        if response.is_stream_consumed:  # a transport that hands over bytes it already holds
            body = response.content
            if len(body) > self.max_bytes:
                raise FetchError(
                    "too_large", f"response of {len(body)} bytes is over the {_cap(self.max_bytes)} cap"
                )
            return body
        chunks: list[bytes] = []
        size = 0
        try:
            for chunk in response.iter_raw():
                size += len(chunk)
                if size > self.max_bytes:
                    raise FetchError(
                        "too_large", f"response is over the {_cap(self.max_bytes)} cap (stopped reading)"
                    )
                chunks.append(chunk)
                if self._monotonic() > deadline:
                    raise FetchError("timeout", f"body not complete within {remaining:.2g} s", reading=True)
        except httpx.TimeoutException:
            raise FetchError("timeout", f"body not complete within {remaining:.2g} s", reading=True) from None
        except (httpx.HTTPError, OSError) as exc:
            raise FetchError("network", f"while reading the body: {_one_line(exc)}") from None
        return b"".join(chunks)


_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def decode_json(body: bytes) -> Any:
    """The body as JSON, or ValueError with a one-line reason (the caller names the endpoint).
    A lone surrogate (`"\\ud800"`, valid JSON, not valid Unicode) becomes U+FFFD: left in a
    model name it failed every poll of the whole server (quote() and UTF-8 cannot encode it)."""
    try:
        doc = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"not JSON ({_one_line(exc)}): starts {_start(body)}") from None
    return _without_lone_surrogates(doc) if _SURROGATE_ESCAPE.search(body) else doc


def _without_lone_surrogates(value: Any) -> Any:
    if isinstance(value, str):
        return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    if isinstance(value, list):
        return [_without_lone_surrogates(v) for v in value]
    if isinstance(value, dict):
        return {_without_lone_surrogates(k): _without_lone_surrogates(v) for k, v in value.items()}
    return value


def decode_text(body: bytes) -> str:
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"not UTF-8 text: starts {_start(body)}") from None


def _connect_reason(exc: httpx.ConnectError) -> str:
    text = _one_line(exc)
    lowered = text.lower()
    if "refused" in lowered:
        return "connection refused"
    if "name or service not known" in lowered or "nodename nor servname" in lowered:
        return f"unknown host ({text})"
    return f"cannot connect ({text})"


def _error_text(body: bytes) -> str:
    """Triton answers errors with {"error": "..."}: show that text, else the body's start."""
    if not body:
        return ""
    try:
        doc = json.loads(body[:4096])
        if isinstance(doc, dict) and isinstance(doc.get("error"), str):
            return f": {_clip(doc['error'])}"
    except (ValueError, UnicodeDecodeError):
        pass
    return f": {_start(body)}"


def _start(body: bytes, width: int = 40) -> str:
    text = body[: width * 4].decode("utf-8", errors="replace")
    return repr(_clip(" ".join(text.split()), width)) if text.strip() else f"{len(body)} blank bytes"


def _clip(text: str, width: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _one_line(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return _clip(text.replace("\n", " "))


def _cap(n_bytes: int) -> str:
    mib = n_bytes / (1024 * 1024)
    return f"{mib:g} MiB" if mib >= 1 else f"{n_bytes} bytes"
