"""A proxy that stands between the NVML collector and its API object and writes down every call.

The collection benchmarks capture the exact pynvml calls gpuwatch makes in one slow period,
then replay them bare as the baseline: the calls' own cost, with no gpuwatch code around them.
"""

from __future__ import annotations

from typing import Any


class Capture:
    def __init__(self, api: Any) -> None:
        self._api = api
        self.recording = False
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    def __getattr__(self, name: str) -> Any:
        target = getattr(self._api, name)
        if not callable(target) or not name.startswith("nvml"):
            return target

        def call(*args: Any) -> Any:
            if self.recording:
                self.calls.append((name, args))
            return target(*args)

        return call
