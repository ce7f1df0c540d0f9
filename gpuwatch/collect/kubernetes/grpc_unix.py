"""One bounded unary gRPC call over a unix socket, and its failure as one line.

Place in the flow: the PodResources and CRI clients call through `UnixChannel`; the collector
turns a `CallFailed` into the job's health line. Each call has a deadline and a reply size cap
(gRPC's default cap is 4 MiB, which the kubelet's List reply passes on big nodes); the channel
is rebuilt after a failure, so a restarted kubelet or runtime is reached again at once rather
than after gRPC's reconnect backoff.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import grpc

R = TypeVar("R")


class CallFailed(Exception):
    """str() is one line naming the socket and what went wrong."""


class UnixChannel:
    def __init__(self, path: str, *, timeout_seconds: float, max_reply_bytes: int) -> None:
        self.path = path
        self.timeout_seconds = timeout_seconds
        self.max_reply_bytes = max_reply_bytes
        self._lock = threading.Lock()
        self._channel: grpc.Channel | None = None

    def call(self, method: str, request: Any, decode: Callable[[bytes], R]) -> R:
        """`method` as `/package.Service/Method`; raises `CallFailed`."""
        self._check_socket()
        channel = self._open()
        rpc: grpc.UnaryUnaryMultiCallable[Any, R] = channel.unary_unary(
            method, request_serializer=lambda m: m.SerializeToString(), response_deserializer=decode
        )
        try:
            reply: R = rpc(request, timeout=self.timeout_seconds)
        except grpc.RpcError as exc:
            self.close()
            raise CallFailed(self._describe(exc)) from None
        return reply

    def close(self) -> None:
        with self._lock:
            channel, self._channel = self._channel, None
        if channel is not None:
            channel.close()

    def _open(self) -> grpc.Channel:
        with self._lock:
            if self._channel is None:
                self._channel = grpc.insecure_channel(
                    f"unix://{os.path.abspath(self.path)}",
                    options=[
                        ("grpc.max_receive_message_length", self.max_reply_bytes),
                        ("grpc.enable_http_proxy", 0),
                    ],
                )
            return self._channel

    def _check_socket(self) -> None:
        try:
            os.stat(self.path)
        except FileNotFoundError:
            raise CallFailed(f"{self.path}: no socket there") from None
        except OSError as exc:
            raise CallFailed(f"{self.path}: {exc.strerror or exc}") from None
        if not os.access(self.path, os.R_OK | os.W_OK):
            raise CallFailed(f"{self.path}: permission denied (gpuwatch needs read and write on it)")

    def _describe(self, exc: grpc.RpcError) -> str:
        # What a failed call raises is also a grpc.Call: its status code and details.
        code: grpc.StatusCode | None = getattr(exc, "code", lambda: None)()
        details: str = getattr(exc, "details", lambda: None)() or ""
        if code == grpc.StatusCode.DEADLINE_EXCEEDED:
            return f"{self.path}: no answer within {self.timeout_seconds:g} s"
        if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
            return (
                f"{self.path}: reply larger than {self.max_reply_bytes} bytes; "
                "raise [kubernetes] max_reply_bytes"
            )
        if code == grpc.StatusCode.UNAVAILABLE and "ermission denied" in details:
            return f"{self.path}: permission denied (gpuwatch needs read and write on it)"
        name = code.name if code is not None else type(exc).__name__
        first = details.splitlines()[0] if details else ""
        return f"{self.path}: {name}{': ' + first if first else ''}"
