"""The JSON API over a real server: answers, 400s for malformed parameters (never a 500), the
OpenAPI document (valid, describing every served path), and generated requests whose answers
must match the documented schemas (an in-house equivalent of schemathesis)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openapi_schema_validator import OAS31Validator
from openapi_spec_validator import validate as validate_spec
from referencing import Registry, Resource

from gpuwatch import jsonform, model
from gpuwatch.serve import openapi
from tests.conftest import ManualClock
from tests.serve_support import Served

SPEC = openapi.document()
_REGISTRY: Registry[Any] = Registry().with_resource("urn:gpuwatch", Resource.opaque(SPEC))


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    s = Served(ManualClock(), max_connections=8, timeout_seconds=5.0)
    yield s
    s.close()


@pytest.fixture(scope="module")
def client(served: Served) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=served.url, timeout=10) as c:
        yield c


def conforms(path: str, response: httpx.Response) -> None:
    """The response's status is documented for `path` and its body fits the documented schema."""
    operation = SPEC["paths"][path]["get"]
    assert str(response.status_code) in operation["responses"], (path, response.status_code, response.text)
    documented = operation["responses"][str(response.status_code)]
    content = documented.get("content", {})
    if "application/json" in content:
        assert response.headers["Content-Type"] == "application/json"
        schema = content["application/json"]["schema"]
        if "$ref" in schema:
            schema = {"$ref": "urn:gpuwatch" + schema["$ref"]}
        OAS31Validator(schema, registry=_REGISTRY).validate(response.json())


# --------------------------------------------------------------------------- the document


def test_openapi_is_valid_and_describes_every_served_path(served: Served, client: httpx.Client) -> None:
    validate_spec(SPEC)
    served_paths = {*served.api.paths, "/metrics"}
    assert served_paths == set(SPEC["paths"])
    assert client.get("/api/v1/openapi.json").json() == SPEC
    for path in served_paths:
        response = client.get(path, params={"series": "gpu_up"} if path.endswith("history") else None)
        assert response.status_code == 200, path
        conforms(path, response)


# --------------------------------------------------------------------------- answers


def test_snapshot_is_the_codec_form_of_the_latest(served: Served, client: httpx.Client) -> None:
    doc = client.get("/api/v1/snapshot").json()
    assert served.latest is not None
    assert jsonform.decode_snapshot(doc) == served.latest


def test_snapshot_before_the_first_tick_is_a_503_with_a_reason(clock: ManualClock) -> None:
    empty = Served(clock, snapshots=False)
    try:
        response = httpx.get(f"{empty.url}/api/v1/snapshot", timeout=5)
        assert response.status_code == 503
        assert "first tick" in response.json()["error"]
        assert response.json()["code"] == "not_ready"  # what a client reads; the text may change
        conforms("/api/v1/snapshot", response)
        health = httpx.get(f"{empty.url}/api/v1/health", timeout=5).json()
        assert health["status"] == "starting"
        # /metrics used to answer 200 with only build_info: a scrape that looked whole.
        metrics = httpx.get(f"{empty.url}/metrics", timeout=5)
        assert metrics.status_code == 503 and metrics.headers["retry-after"] == "1"
        assert "first tick has not completed" in metrics.text and "gpuwatch_" not in metrics.text
    finally:
        empty.close()


def test_findings_are_the_latest_snapshots_naming_the_lost_gpu(served: Served, client: httpx.Client) -> None:
    response = client.get("/api/v1/findings")
    conforms("/api/v1/findings", response)
    doc = response.json()
    assert served.latest is not None and doc["timestamp"] == served.latest.timestamp
    found = [jsonform.decode(model.Finding, f) for f in doc["findings"]]
    assert found == list(served.latest.findings)
    lost = next(f for f in found if f.kind is model.FindingKind.GPU_LOST)
    assert lost.subject.gpu_index == 2 and lost.severity is model.Severity.CRITICAL
    assert found[0].severity is model.Severity.CRITICAL  # most severe first


def test_findings_before_the_first_tick_are_a_503(clock: ManualClock) -> None:
    empty = Served(clock, snapshots=False)
    try:
        response = httpx.get(f"{empty.url}/api/v1/findings", timeout=5)
        assert response.status_code == 503 and response.json()["code"] == "not_ready"
        conforms("/api/v1/findings", response)
    finally:
        empty.close()


def test_history_returns_labelled_downsampled_series(served: Served, client: httpx.Client) -> None:
    assert served.latest is not None
    end = served.latest.timestamp
    doc = client.get(
        "/api/v1/history", params={"series": "gpu_power_watts", "from": str(end - 10), "to": str(end)}
    ).json()
    by_gpu = {r["labels"]["gpu"]: r for r in doc["result"]}
    assert set(by_gpu) == {"0", "1", "2", "3"}
    assert by_gpu["2"]["points"][-1][0] < end  # lost at the last tick: no value, not a 0
    assert all(r["resolution_seconds"] == 1.0 for r in doc["result"])
    gpu1 = next(r for r in doc["result"] if r["labels"]["gpu"] == "1")
    assert len(gpu1["points"]) == 6
    ts, mean, low, high = gpu1["points"][-1]
    assert ts == end and low <= mean <= high
    two = client.get(
        "/api/v1/history",
        params={"series": "gpu_power_watts", "from": str(end - 10), "to": str(end), "points": "2"},
    ).json()
    assert all(len(r["points"]) <= 2 for r in two["result"]) and two["result"][0]["resolution_seconds"] > 1
    one_gpu = client.get(
        "/api/v1/history", params={"series": "gpu_up", "gpu": "2", "from": str(end - 10), "to": str(end)}
    ).json()
    assert [r["labels"]["gpu"] for r in one_gpu["result"]] == ["2"]
    assert one_gpu["result"][0]["points"][-1][1] == 0.0
    model_series = client.get(
        "/api/v1/history", params={"series": "model_queue_share_ratio", "model": "llm-7b", "from": "-1w"}
    ).json()
    assert [r["labels"]["model"] for r in model_series["result"]] == ["llm-7b"]


def test_events_are_newest_first_and_filtered_by_kind(served: Served, client: httpx.Client) -> None:
    doc = client.get("/api/v1/events", params={"from": "-1w"}).json()
    kinds = [e["kind"] for e in doc["events"]]
    assert {"xid", "gpu_lost"} <= set(kinds)
    stamps = [e["timestamp"] for e in doc["events"]]
    assert stamps == sorted(stamps, reverse=True)
    xids = client.get("/api/v1/events", params={"from": "-1w", "kinds": "xid"}).json()["events"]
    assert {e["code"] for e in xids} == {79, 13} and all(e["kind"] == "xid" for e in xids)
    assert len(client.get("/api/v1/events", params={"from": "-1w", "limit": "1"}).json()["events"]) == 1


def test_health_reports_collectors_and_nvml(client: httpx.Client) -> None:
    doc = client.get("/api/v1/health").json()
    assert doc["status"] == "degraded"
    assert any("triton:edge" in p and "connection refused" in p for p in doc["problems"])
    assert doc["nvml"] == {"up": True, "status": None}
    assert {c["name"] for c in doc["collectors"]} == {"nvml", "nvml_slow", "triton:edge"}


def test_series_catalog_names_the_prometheus_family(client: httpx.Client) -> None:
    entries = {e["name"]: e for e in client.get("/api/v1/series").json()["series"]}
    assert entries["gpu_power_watts"]["metric"] == "gpuwatch_gpu_power_watts"
    assert entries["gpu_sm_clock_mhz"]["metric"] == "gpuwatch_gpu_sm_clock_hertz"
    assert entries["gpu_energy_joules"]["metric"] == "gpuwatch_gpu_energy_joules_total"
    assert entries["model_up"]["labels"] == ["server", "model", "version"]


def test_an_unknown_series_is_a_400_with_a_code(client: httpx.Client) -> None:
    response = client.get("/api/v1/history", params={"series": "gpu_no_such_figure"})
    assert response.status_code == 400
    assert response.json()["code"] == "unknown_series"  # what a client reads; the text may change
    assert "code" not in client.get("/api/v1/history", params={"series": "gpu_up", "points": "0"}).json()


# --------------------------------------------------------------------------- malformed parameters

MALFORMED = [
    ("/api/v1/history", "", "series is required"),
    ("/api/v1/history", "series=nope", "is not a series"),
    ("/api/v1/history", "series=gpu_up&from=yesterday", "from='yesterday': expected Unix seconds"),
    ("/api/v1/history", "series=gpu_up&from=-1x", "relative time"),
    ("/api/v1/history", "series=gpu_up&from=0001-01-01T00:00Z", "between 0 and"),
    ("/api/v1/history", "series=gpu_up&to=nan", "between 0 and"),
    ("/api/v1/history", "series=gpu_up&to=1e300", "between 0 and"),
    ("/api/v1/history", "series=gpu_up&from=-99999999999w", "before now is before 1970"),
    ("/api/v1/events", "from=99999999999d", "before now is before 1970"),
    ("/api/v1/history", "series=gpu_up&from=-1h&to=-2h", "is after to"),
    ("/api/v1/history", "series=gpu_up&points=0", "points='0': expected an integer from 1 to 10000"),
    ("/api/v1/history", "series=gpu_up&points=1.5", "expected an integer"),
    ("/api/v1/history", "series=gpu_up&points=99999999999999999999", "expected an integer"),
    ("/api/v1/history", "series=gpu_up&gpu=first", "gpu='first'"),
    (
        "/api/v1/history",
        "series=gpu_up&model=resnet50",
        "model does not apply to gpu_up, a gpu series: its labels",
    ),
    ("/api/v1/history", "series=model_up&gpu=0", "gpu does not apply to model_up, a model series"),
    ("/api/v1/history", "series=gpu_up&series=gpu_up", "given 2 times"),
    ("/api/v1/history", "series=gpu_up&serie=x", "unknown parameter 'serie'"),
    ("/api/v1/history", "series=%ff", "not valid UTF-8"),
    ("/api/v1/history", "series=" + "x" * 300, "longer than 256"),
    ("/api/v1/events", "kinds=xid,boom", "'boom' is not an event kind"),
    ("/api/v1/events", "limit=-1", "limit='-1'"),
    ("/api/v1/events", "limit=", "limit=''"),
    ("/api/v1/snapshot", "x=1", "unknown parameter 'x': expected none"),
    ("/api/v1/health", "verbose", "unknown parameter 'verbose'"),
]


@pytest.mark.parametrize(("path", "query", "message"), MALFORMED)
def test_malformed_parameters_are_400_with_a_message(
    client: httpx.Client, path: str, query: str, message: str
) -> None:
    response = client.get(f"{path}?{query}")
    assert response.status_code == 400, response.text
    assert message in response.json()["error"]
    conforms(path, response)


@pytest.mark.parametrize("spelling", ["-1h", "1h", "-60m", "3600 s"])
def test_from_is_a_span_before_now_with_or_without_a_minus(client: httpx.Client, spelling: str) -> None:
    """The CLI's grammar (timespec.parse_moment): `1h` and `-1h` are both an hour before `to`."""
    response = client.get("/api/v1/events", params={"from": spelling, "to": "now"})
    assert response.status_code == 200, response.text
    doc = response.json()
    assert doc["to"] - doc["from"] == 3600
    conforms("/api/v1/events", response)


def test_from_and_to_take_dates_and_years_as_the_cli_does(client: httpx.Client) -> None:
    start = datetime(2026, 11, 24, 3, 12, tzinfo=UTC).timestamp()
    dated = client.get("/api/v1/events", params={"from": "2026-11-24T03:12Z", "to": "2026-11-24 04:12+00:00"})
    assert (dated.json()["from"], dated.json()["to"]) == (start, start + 3600)
    year = client.get("/api/v1/events", params={"from": "-1y", "to": "now"}).json()
    assert year["to"] - year["from"] == 365 * 86400


# --------------------------------------------------------------------------- generated requests

_NAMES = st.sampled_from(
    ["series", "from", "to", "points", "gpu", "uuid", "server", "model", "version", "kinds", "limit", "x", ""]
)
_VALUES = st.one_of(
    st.text(max_size=20),
    st.sampled_from(
        [
            "gpu_power_watts",
            "gpu_up",
            "model_up",
            "triton_up",
            "now",
            "-1h",
            "-5m",
            "-2d",
            "1795558200",
            "0",
            "1",
            "-1",
            "200",
            "10001",
            "nan",
            "inf",
            "xid,gpu_lost",
            "1e3",
        ]
    ),
    st.integers(min_value=-(10**20), max_value=10**20).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
)
_PATHS = st.sampled_from(sorted(p for p in SPEC["paths"] if p.startswith("/api/v1/")))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=_PATHS, params=st.lists(st.tuples(_NAMES, _VALUES), max_size=5), raw=st.binary(max_size=12))
def test_generated_requests_never_get_a_5xx_and_always_fit_the_schema(
    client: httpx.Client, path: str, params: list[tuple[str, str]], raw: bytes
) -> None:
    query = urlencode(params)
    if raw:
        query += ("&" if query else "") + quote(raw, safe="=&")
    response = client.get(f"{path}?{query}")
    assert response.status_code in (200, 400), (query, response.status_code, response.text)
    conforms(path, response)
    if response.status_code == 400:
        assert response.json()["error"]


def test_history_of_every_series_in_the_catalog_fits_the_schema(client: httpx.Client) -> None:
    for entry in client.get("/api/v1/series").json()["series"]:
        response = client.get(
            "/api/v1/history", params={"series": entry["name"], "from": "-1w", "points": "3"}
        )
        assert response.status_code == 200, entry["name"]
        conforms("/api/v1/history", response)


def test_a_failing_history_is_a_503_that_says_so(clock: ManualClock) -> None:
    served = Served(clock)

    class Broken:
        def query(self, *args: Any) -> Any:
            raise OSError("database is locked")

        def events(self, *args: Any) -> Any:
            raise OSError("disk I/O error")

    served.api._history = Broken()  # type: ignore[assignment]
    try:
        history = httpx.get(f"{served.url}/api/v1/history?series=gpu_up", timeout=5)
        assert history.status_code == 503 and "database is locked" in history.json()["error"]
        events = httpx.get(f"{served.url}/api/v1/events", timeout=5)
        assert events.status_code == 503 and "disk I/O error" in events.json()["error"]
    finally:
        served.close()


def test_event_kinds_documented_are_the_data_model_kinds() -> None:
    documented = SPEC["components"]["schemas"]["Event"]["properties"]["kind"]["enum"]
    assert documented == [k.value for k in model.EventKind]
