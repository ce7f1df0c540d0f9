"""The terminal dashboard, `gpuwatch top` (Textual).

Place in the flow: a reader. It is handed `gpuwatch.client.protocol.Client` objects and draws the
snapshots and history they return; it never imports NVML, the collectors, the engine or the
store (its layer rule in pyproject.toml; tests/test_layers.py holds it). `app.TopApp` is the
application; each panel is a small widget in its own module, fed data by
`node_screen.NodeScreen`, which alone calls the client, in worker threads.
"""

from __future__ import annotations

from collections.abc import Sequence

from gpuwatch.client.protocol import Client, Fleet
from gpuwatch.tui.app import TopApp


def run(
    clients: Sequence[Client],
    *,
    refresh_seconds: float = 1.0,
    monochrome: bool = False,
    fleet: Fleet | None = None,
) -> int:
    """Run the dashboard until the user quits; 0 when they did."""
    TopApp(clients, refresh_seconds=refresh_seconds, monochrome=monochrome, fleet=fleet).run()
    return 0
