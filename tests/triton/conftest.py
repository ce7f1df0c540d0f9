"""Fixtures for the Triton tests: one real tritonserver for the whole session, and a way to send
it a known load with tritonclient."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from tests.triton.server import TEST_MODELS, TritonProcess, pytriton_root, start_server, write_repository


def require_triton() -> None:
    if pytriton_root() is None:
        pytest.skip(
            "nvidia-pytriton is not installed (it carries tritonserver): pip install nvidia-pytriton==0.7.0"
        )


@pytest.fixture(scope="session")
def triton_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TritonProcess]:
    """Triton 2.51 with the test models (tests/triton/server.py TEST_MODELS), explicit model
    control, all loaded at start (`broken` fails to load on purpose)."""
    require_triton()
    work = tmp_path_factory.mktemp("triton")
    repo = write_repository(work / "models", TEST_MODELS)
    server = start_server(repo, work)
    yield server
    server.stop()


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return tmp_path


class Load:
    """Sends requests with tritonclient (HTTP) from a pool of threads, one client per thread
    (tritonclient's HTTP client may only be used on the thread that made it)."""

    def __init__(self, server: TritonProcess, threads: int = 8) -> None:
        self.server = server
        self.threads = threads
        self._local = threading.local()

    def _client(self):  # type: ignore[no-untyped-def]
        import tritonclient.http as triton_http

        client = getattr(self._local, "client", None)
        if client is None:
            client = self._local.client = triton_http.InferenceServerClient(
                self.server.url.removeprefix("http://"), connection_timeout=30, network_timeout=30
            )
        return client

    def one(self, model: str, marker: float = 1.0, shape: tuple[int, ...] = (1, 4)) -> str:
        """One request; "ok", or the HTTP status the server answered."""
        import tritonclient.http as triton_http
        from tritonclient.utils import InferenceServerException

        data = np.full(shape, 1.0, dtype=np.float32)
        data[..., 0] = marker
        inp = triton_http.InferInput("INPUT0", list(shape), "FP32")
        inp.set_data_from_numpy(data)
        try:
            self._client().infer(model, [inp])
            return "ok"
        except InferenceServerException as exc:
            return str(exc.status() or "error")

    def send(self, model: str, markers: list[float], shape: tuple[int, ...] = (1, 4)) -> Counter[str]:
        """One request per marker, `threads` at a time; what came back, counted."""
        with ThreadPoolExecutor(self.threads) as pool:
            return Counter(pool.map(lambda m: self.one(model, m, shape), markers))


@pytest.fixture
def load(triton_server: TritonProcess) -> Load:
    return Load(triton_server)
