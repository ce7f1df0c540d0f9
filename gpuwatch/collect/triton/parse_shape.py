"""What every Triton endpoint parser shares: the model key, the shape error, and the checks
that name where a JSON body went wrong.

Place in the flow: the parsers (`parse_metrics`, `parse_stats`, `parse_config`, `parse_index`,
`parse_server`) raise `ShapeError` through these checks; the poll (`poll.py`) catches it and
turns it into one clause of the server's or the model's reason. Pure, no I/O.
"""

from __future__ import annotations

from typing import Any


class ShapeError(ValueError):
    """A body that does not have the shape Triton gives. str() is one line."""


ModelKey = tuple[str, str]
"""(model name, version): Triton's versions are strings."""


def count(value: Any, where: str) -> int:
    """A non-negative integer (protobuf's JSON may quote 64-bit integers)."""
    if isinstance(value, bool):
        raise ShapeError(f"{where}: expected a non-negative integer, got {value!r}")
    if isinstance(value, int) and value >= 0:
        return value
    if isinstance(value, float) and value >= 0 and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.isdigit():
        return int(value)
    shown = kind(value) if value is None or isinstance(value, dict | list) else repr(value)
    raise ShapeError(f"{where}: expected a non-negative integer, got {shown}")


def string(obj: dict[str, Any], key: str, where: str) -> str:
    """`obj[key]` as a string; a `name` must not be empty."""
    value = obj.get(key)
    if not isinstance(value, str) or (key == "name" and not value):
        raise ShapeError(f"{where}.{key}: expected a string, got {kind(value)}")
    return value


def text(value: Any) -> str | None:
    """A non-empty string, else None."""
    return value if isinstance(value, str) and value else None


def kind(value: Any) -> str:
    """What a JSON value is, in words, for an error message."""
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return f"the string {quote(value, 30)}"
    return f"the number {value!r}" if isinstance(value, int | float) else type(value).__name__


def quote(value: str, width: int = 60) -> str:
    """`value` cut to `width` characters and quoted, for an error message."""
    shown = value if len(value) <= width else value[: width - 1] + "…"
    return repr(shown)
