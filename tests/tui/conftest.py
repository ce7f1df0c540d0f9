"""Fixtures for the dashboard's tests: a recorded node on a manual clock, in UTC."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest
from textual.pilot import Pilot

from tests.tui.scene import Scene, build_scene


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def utc() -> Iterator[None]:
    """Times on screen are local: pin the zone so snapshots read the same everywhere."""
    before = os.environ.get("TZ")
    os.environ["TZ"] = "UTC"
    time.tzset()
    yield
    if before is None:
        os.environ.pop("TZ", None)
    else:
        os.environ["TZ"] = before
    time.tzset()


@pytest.fixture
def no_color_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)


@pytest.fixture
def scene(monkeypatch: pytest.MonkeyPatch, utc: None, no_color_unset: None) -> Iterator[Scene]:
    s = build_scene(monkeypatch)
    yield s
    s.close()


async def settle(pilot: Pilot[None], rounds: int = 4) -> None:
    """Let the feed, the workers it starts and the redraws they cause all finish."""
    for _ in range(rounds):
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()
