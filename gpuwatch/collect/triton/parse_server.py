"""`GET /v2` → the server's version.

Place in the flow: the poll (`poll.py`) reads the server metadata once per contact (again after
the server was unreachable) and hands the decoded JSON to `parse_server_metadata`; the version
is shown on the server's status. Pure, no I/O.
"""

from __future__ import annotations

from typing import Any

from gpuwatch.collect.triton import parse_shape as shape
from gpuwatch.collect.triton.parse_shape import ShapeError


def parse_server_metadata(doc: Any) -> str | None:
    """`GET /v2` → Triton's version ("2.51.0"), or None when it does not say."""
    if not isinstance(doc, dict):
        raise ShapeError(f"expected the server metadata object, got {shape.kind(doc)}")
    version = doc.get("version")
    return version if isinstance(version, str) and version else None


def version_tuple(version: str | None) -> tuple[int, ...] | None:
    """ "2.51.0" → (2, 51, 0); None when there is no readable version."""
    if not version:
        return None
    parts = []
    for piece in version.split("."):
        digits = "".join(ch for ch in piece if ch.isdigit())
        if not digits:
            break
        parts.append(int(digits))
    return tuple(parts) or None
