"""Who may read the daemon: a bearer token and/or HTTP basic users with bcrypt hashes.

Place in the flow: the daemon loads an `Authenticator` from its settings at start (a bad file is
a one-line `AuthConfigError`, exit 2); the HTTP server asks it about every request, /metrics
included. bcrypt is slow by design (~0.2 s at cost 12), and Prometheus sends the same basic
credentials on every scrape, so a credential that passed once is remembered by its SHA-256
(never the password itself) and later checks cost microseconds.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import threading
from pathlib import Path

import bcrypt

from gpuwatch.config import DaemonSettings, SettingFileError, read_setting_file

MIN_TOKEN_CHARS = 16
BCRYPT_MAX_PASSWORD_BYTES = 72
"""bcrypt reads at most 72 bytes of a password (and bcrypt ≥ 4.1 raises past them): a longer
password can never be one `htpasswd -B` hashed whole, so it is refused (401), never truncated."""
REMEMBERED_CREDENTIALS = 256
_BCRYPT_HASH = re.compile(r"^\$2[aby]\$\d\d\$[./A-Za-z0-9]{53}$")


class AuthConfigError(ValueError):
    """A token or password file gpuwatch cannot use; str() is one line naming the file and the fix."""


class Authenticator:
    def __init__(self, bearer_token: str | None = None, basic_users: dict[str, bytes] | None = None) -> None:
        self._token = bearer_token.encode() if bearer_token else None
        self._users = dict(basic_users or {})
        self._passed: set[bytes] = set()
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: DaemonSettings) -> Authenticator | None:
        """None when no authentication is configured."""
        token = _read_token(Path(settings.bearer_token_file)) if settings.bearer_token_file else None
        users = _read_users(Path(settings.basic_auth_file)) if settings.basic_auth_file else None
        if token is None and not users:
            return None
        return cls(token, users)

    @property
    def schemes(self) -> tuple[str, ...]:
        return (("Bearer",) if self._token else ()) + (("Basic",) if self._users else ())

    def challenge(self) -> str:
        """The WWW-Authenticate value for a 401."""
        return ", ".join(f'{scheme} realm="gpuwatch"' for scheme in self.schemes)

    def allows(self, authorization: str | None) -> bool:
        if not authorization:
            return False
        scheme, _, credentials = authorization.strip().partition(" ")
        scheme = scheme.lower()
        credentials = credentials.strip()
        if scheme == "bearer" and self._token is not None:
            return hmac.compare_digest(credentials.encode(), self._token)
        if scheme == "basic" and self._users:
            return self._basic(credentials)
        return False

    def _basic(self, credentials: str) -> bool:
        try:
            decoded = base64.b64decode(credentials.encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError):
            return False
        user_bytes, sep, password = decoded.partition(b":")
        if not sep:
            return False
        user = user_bytes.decode("utf-8", errors="replace")
        hashed = self._users.get(user)
        if hashed is None:
            return False
        fingerprint = hashlib.sha256(user_bytes + b"\0" + password + b"\0" + hashed).digest()
        with self._lock:
            if fingerprint in self._passed:
                return True
        if len(password) > BCRYPT_MAX_PASSWORD_BYTES:
            return False
        try:
            if not bcrypt.checkpw(password, hashed):
                return False
        except ValueError:  # a hash bcrypt cannot read: refuse, never fail the connection
            return False
        with self._lock:
            if len(self._passed) >= REMEMBERED_CREDENTIALS:
                self._passed.clear()
            self._passed.add(fingerprint)
        return True


def _read(path: Path, what: str) -> str:
    try:
        return read_setting_file(path).decode("utf-8")
    except FileNotFoundError:
        raise AuthConfigError(f"{what} {path}: no such file (create it, or unset the setting)") from None
    except SettingFileError as exc:
        raise AuthConfigError(f"{what} {path}: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise AuthConfigError(
            f"{what} {path}: cannot read: {getattr(exc, 'strerror', None) or exc}"
        ) from None


def _read_token(path: Path) -> str:
    token = _read(path, "[daemon] bearer_token_file").strip()
    if len(token) < MIN_TOKEN_CHARS or any(c.isspace() for c in token):
        raise AuthConfigError(
            f"[daemon] bearer_token_file {path}: expected one token of at least {MIN_TOKEN_CHARS} "
            "characters without spaces (e.g. from `openssl rand -hex 32`)"
        )
    return token


def _read_users(path: Path) -> dict[str, bytes]:
    users: dict[str, bytes] = {}
    for number, raw in enumerate(_read(path, "[daemon] basic_auth_file").splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        user, sep, hashed = line.partition(":")
        if not sep or not user or not _BCRYPT_HASH.match(hashed):
            raise AuthConfigError(
                f"[daemon] basic_auth_file {path} line {number}: expected USER:BCRYPT_HASH "
                "(e.g. from `htpasswd -nbBC 12 USER PASSWORD`)"
            )
        users[user] = hashed.encode()
    if not users:
        raise AuthConfigError(f"[daemon] basic_auth_file {path}: no USER:BCRYPT_HASH line")
    return users
