"""The systemd notify protocol, spoken directly over the `NOTIFY_SOCKET` datagram socket.

Place in the flow: the daemon tells systemd READY=1 once it serves, STATUS= lines when what it
can say changes, WATCHDOG=1 keep-alives while the engine is ticking, and STOPPING=1 on the way
out (sd_notify(3)). No libsystemd: the protocol is one datagram of newline-separated
KEY=VALUE lines to a unix socket, an abstract one when the path starts with "@".
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping

log = logging.getLogger("gpuwatch.notify")


class Notifier:
    """Sends notifications to systemd; every method is a no-op without NOTIFY_SOCKET."""

    def __init__(self, address: str | None, watchdog_seconds: float | None = None) -> None:
        self._address = address
        self.watchdog_seconds = watchdog_seconds
        """WATCHDOG_USEC as seconds, when systemd watches this process; ping at half of it."""
        self._sock: socket.socket | None = None
        if address:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> Notifier:
        env = os.environ if environ is None else environ
        address = env.get("NOTIFY_SOCKET") or None
        if address and not (address.startswith(("/", "@"))):
            log.warning("NOTIFY_SOCKET=%r is neither a path nor an abstract socket: ignored", address)
            address = None
        watchdog: float | None = None
        usec = env.get("WATCHDOG_USEC")
        pid = env.get("WATCHDOG_PID")
        if usec and (not pid or pid == str(os.getpid())):
            try:
                watchdog = int(usec) / 1e6 if int(usec) > 0 else None
            except ValueError:
                log.warning("WATCHDOG_USEC=%r is not a number: no watchdog keep-alives", usec)
        return cls(address, watchdog)

    @property
    def enabled(self) -> bool:
        return self._sock is not None

    def send(self, *lines: str) -> bool:
        """Send KEY=VALUE lines in one datagram; False (logged once per call) if it failed."""
        if self._sock is None or self._address is None:
            return False
        target = "\0" + self._address[1:] if self._address.startswith("@") else self._address
        payload = "\n".join(line.replace("\n", " ") for line in lines).encode()
        try:
            self._sock.sendto(payload, target)
        except OSError as exc:
            log.warning("cannot notify systemd at %s: %s", self._address, exc)
            return False
        return True

    def ready(self, status: str) -> bool:
        return self.send("READY=1", f"STATUS={status}", f"MAINPID={os.getpid()}")

    def status(self, status: str) -> bool:
        return self.send(f"STATUS={status}")

    def watchdog(self) -> bool:
        return self.send("WATCHDOG=1")

    def stopping(self, status: str) -> bool:
        return self.send("STOPPING=1", f"STATUS={status}")

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
