"""The README's screenshot is what `gpuwatch top --demo` draws today, not as it once did."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import REPO

SNAPSHOT = Path(__file__).parent / "__snapshots__" / "test_snapshots" / "test_demo_overview.svg"


def test_readme_screenshot_is_the_demo_as_it_draws_today() -> None:
    shown = (REPO / "docs" / "top.svg").read_text()
    assert shown == SNAPSHOT.read_text(), (
        "docs/top.svg differs from the accepted 120×40 --demo snapshot: copy it over "
        f"(cp '{SNAPSHOT.relative_to(REPO)}' docs/top.svg)"
    )
    assert "docs/top.svg" in (REPO / "README.md").read_text()
