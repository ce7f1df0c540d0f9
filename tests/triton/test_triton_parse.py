"""The pure parsers over real Triton 2.51 bodies (tests/data/triton/, copied from
../shared/data/triton/) and hand-made variants: GPU series, servers older than 2.48 and 2.38,
LLM backends' families, garbage and wrong shapes."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest

from gpuwatch.collect.triton.parse_config import parse_config
from gpuwatch.collect.triton.parse_index import model_state, parse_index
from gpuwatch.collect.triton.parse_metrics import MetricsParser, parse_metrics
from gpuwatch.collect.triton.parse_server import parse_server_metadata, version_tuple
from gpuwatch.collect.triton.parse_shape import ShapeError
from gpuwatch.collect.triton.parse_stats import parse_stats, read_entry, read_entry_fast
from gpuwatch.demo.triton import load_recording
from gpuwatch.model import ModelState

DATA = Path(__file__).resolve().parent.parent / "data" / "triton"
UUIDS = ("GPU-8c4fe0a9-1111-2222-3333-444455556666", "GPU-0d2a77b1-aaaa-bbbb-cccc-ddddeeeeffff")


def text(name: str) -> str:
    return (DATA / name).read_text()


def doc(name: str) -> Any:
    return json.loads((DATA / name).read_text())


def per_gpu(metrics: str) -> str:
    """The capture as a server with two GPU instances prints it: each model counter split over
    two series with a gpu_uuid label (failures and the pending count have none)."""
    out = []
    for line in metrics.splitlines():
        m = re.match(
            r"^(nv_inference_(?:request_success|count|exec_count|\w+_duration_us))\{(.*)\} (\d+)$", line
        )
        if not m:
            out.append(line)
            continue
        family, labels, value = m.group(1), m.group(2), int(m.group(3))
        first = value // 3
        out.append(f'{family}{{gpu_uuid="{UUIDS[0]}",{labels}}} {first}')
        out.append(f'{family}{{gpu_uuid="{UUIDS[1]}",{labels}}} {value - first}')
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------- /metrics


def test_metrics_capture_is_summed_per_model_version_and_keyed_by_family() -> None:
    scrape = parse_metrics(text("metrics.txt"))
    assert set(scrape.models) == {("resnet_stub", "1"), ("bert_stub", "1")}
    resnet = scrape.models[("resnet_stub", "1")]
    assert resnet.values["nv_inference_request_success"] == 300
    assert resnet.values["nv_inference_count"] == 300
    assert resnet.values["nv_inference_exec_count"] == 58
    assert resnet.values["nv_inference_queue_duration_us"] == 1669162
    assert resnet.values["nv_inference_pending_request_count"] == 0
    assert resnet.failures_by_reason == {"OTHER": 0, "BACKEND": 0, "CANCELED": 0, "REJECTED": 0}
    assert resnet.gpu_uuids == ()
    # server-wide gauges are not a model
    assert "nv_cpu_utilization" in scrape.families
    assert scrape.problems == ()


def test_failures_by_reason_from_the_failure_capture() -> None:
    scrape = parse_metrics(text("metrics_failures.txt"))
    raise_model = scrape.models[("bert_raise", "1")]
    assert raise_model.failures_by_reason["BACKEND"] == 41
    assert sum(raise_model.failures_by_reason.values()) == 41
    assert raise_model.values["nv_inference_request_success"] == 159


def test_series_of_gpu_instances_are_summed_and_their_uuids_kept() -> None:
    plain = parse_metrics(text("metrics.txt"))
    split = parse_metrics(per_gpu(text("metrics.txt")))
    for key, model in plain.models.items():
        assert split.models[key].values == model.values
        assert split.models[key].gpu_uuids == tuple(sorted(UUIDS))


def test_summary_latencies_are_not_mistaken_for_the_counters() -> None:
    with_summaries = parse_metrics(text("metrics_summary_latencies.txt")).models[("resnet_stub", "1")]
    assert with_summaries.values["nv_inference_request_duration_us"] == 5802801
    assert with_summaries.values["nv_inference_request_success"] == 300
    assert not any("summary" in family for family in with_summaries.values)


def test_summary_latencies_give_p50_p90_p99_of_request_queue_and_compute() -> None:
    # A capture of tritonserver 2.51 started with --metrics-config summary_latencies=true.
    parsed = parse_metrics(text("metrics_summary_latencies.txt"))
    resnet = parsed.models[("resnet_stub", "1")].quantiles
    assert resnet["request_p50"] == 18595
    assert resnet["request_p90"] == 21576
    assert resnet["request_p99"] == 55904
    assert resnet["queue_p50"] == 6839
    assert resnet["queue_p90"] == 9930
    assert set(resnet) == {
        f"{s}_{q}" for s in ("request", "queue", "compute_infer") for q in ("p50", "p90", "p99")
    }
    # Remembered series read their new values on the next body, the cache path.
    parser = MetricsParser()
    parser.parse(text("metrics_summary_latencies.txt"))
    again = parser.parse(
        text("metrics_summary_latencies.txt").replace(
            'nv_inference_request_summary_us{model="resnet_stub",version="1",quantile="0.5"} 18595',
            'nv_inference_request_summary_us{model="resnet_stub",version="1",quantile="0.5"} 20000',
        )
    )
    assert again.models[("resnet_stub", "1")].quantiles["request_p50"] == 20000
    assert parse_metrics(text("metrics.txt")).models[("resnet_stub", "1")].quantiles == {}


def test_a_quantile_with_no_observation_in_the_window_is_absent() -> None:
    body = (
        "# TYPE nv_inference_queue_summary_us summary\n"
        'nv_inference_queue_summary_us{model="m",version="1",quantile="0.5"} NaN\n'
        'nv_inference_queue_summary_us{model="m",version="1",quantile="0.9"} 12\n'
        "# TYPE nv_inference_request_success counter\n"
        'nv_inference_request_success{model="m",version="1"} 0\n'
    )
    assert parse_metrics(body).models[("m", "1")].quantiles == {"queue_p90": 12}


def test_a_body_without_type_lines_is_read() -> None:
    scrape = parse_metrics(text("metrics_rejected.txt"))
    model = scrape.models[("resnet_q", "1")]
    assert model.values["nv_inference_request_success"] == 3
    assert set(model.failures_by_reason) == {"BACKEND", "OTHER", "CANCELED", "REJECTED"}


def test_server_older_than_2_48_has_one_failure_series_without_reason() -> None:
    old = re.sub(
        r'nv_inference_request_failure\{model="(\w+)",reason="(?!BACKEND)\w+",version="1"\} 0\n',
        "",
        text("metrics_failures.txt"),
    )
    old = re.sub(r'reason="BACKEND",', "", old)
    model = parse_metrics(old).models[("bert_raise", "1")]
    assert model.failures_by_reason == {"": 41}


def test_server_older_than_2_38_has_no_pending_count() -> None:
    old = "\n".join(line for line in text("metrics.txt").splitlines() if "pending_request" not in line)
    model = parse_metrics(old).models[("resnet_stub", "1")]
    assert "nv_inference_pending_request_count" not in model.values
    assert model.values["nv_inference_request_success"] == 300


def test_llm_backend_families_are_kept_with_their_labels() -> None:
    body = text("metrics.txt") + (
        "# HELP nv_trt_llm_request_metrics TRT LLM request metrics\n"
        "# TYPE nv_trt_llm_request_metrics gauge\n"
        'nv_trt_llm_request_metrics{model="resnet_stub",request_type="waiting",version="1"} 3\n'
        'nv_trt_llm_request_metrics{model="resnet_stub",request_type="scheduled",version="1"} 4\n'
        "# TYPE nv_trt_llm_kv_cache_block_metrics gauge\n"
        'nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type="fraction",model="resnet_stub",version="1"}'
        " 0.25\n"
        "# TYPE vllm:num_requests_running gauge\n"
        'vllm:num_requests_running{model="bert_stub",version="1"} 5\n'
        "# TYPE vllm:time_to_first_token_seconds histogram\n"
        'vllm:time_to_first_token_seconds_bucket{le="0.1",model="bert_stub",version="1"} 2\n'
        'vllm:time_to_first_token_seconds_bucket{le="+Inf",model="bert_stub",version="1"} 4\n'
        'vllm:time_to_first_token_seconds_sum{model="bert_stub",version="1"} 0.9\n'
        'vllm:time_to_first_token_seconds_count{model="bert_stub",version="1"} 4\n'
    )
    scrape = parse_metrics(body)
    assert scrape.models[("resnet_stub", "1")].llm == {
        'nv_trt_llm_request_metrics{request_type="waiting"}': 3,
        'nv_trt_llm_request_metrics{request_type="scheduled"}': 4,
        'nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type="fraction"}': 0.25,
    }
    assert scrape.models[("bert_stub", "1")].llm == {
        "vllm:num_requests_running": 5,
        "vllm:time_to_first_token_seconds_sum": 0.9,
        "vllm:time_to_first_token_seconds_count": 4,
    }


def test_a_remembered_series_reads_its_new_value() -> None:
    parser = MetricsParser()
    first = parser.parse(text("metrics.txt")).models[("resnet_stub", "1")]
    later = text("metrics.txt").replace(
        'nv_inference_request_success{model="resnet_stub",version="1"} 300',
        'nv_inference_request_success{model="resnet_stub",version="1"} 777',
    )
    second = parser.parse(later).models[("resnet_stub", "1")]
    assert first.values["nv_inference_request_success"] == 300
    assert second.values["nv_inference_request_success"] == 777
    assert second.values["nv_inference_count"] == 300
    # the same body a third time: every line is known, nothing is parsed, the result is the same
    third = parser.parse(later)
    assert third.models == parser.parse(later).models == parse_metrics(later).models
    assert third.families == parse_metrics(later).families


def test_a_sample_with_a_timestamp_is_read_by_its_value_not_its_timestamp() -> None:
    parser = MetricsParser()
    for value in (5, 9):
        sample = f'nv_inference_count{{model="m",version="1"}} {value} 1795558297158'
        body = f"# TYPE nv_inference_count counter\n{sample}\n"
        assert parser.parse(body).models[("m", "1")].values["nv_inference_count"] == value


def test_series_of_an_unloaded_model_are_forgotten() -> None:
    parser = MetricsParser()
    parser.parse(text("metrics.txt"))
    remembered = len(parser._series)
    without_bert = "\n".join(line for line in text("metrics.txt").splitlines() if "bert_stub" not in line)
    scrape = parser.parse(without_bert)
    assert set(scrape.models) == {("resnet_stub", "1")}
    assert 0 < len(parser._series) < remembered


def test_garbage_is_not_prometheus_text() -> None:
    with pytest.raises(ShapeError, match="not Prometheus text"):
        parse_metrics("<html><body>Bad gateway</body></html>\n")


def test_one_bad_line_is_reported_and_the_rest_kept() -> None:
    body = text("metrics.txt").replace(
        'nv_inference_count{model="bert_stub",version="1"} 100', 'nv_inference_count{model="bert_stub" 100'
    )
    scrape = parse_metrics(body)
    assert scrape.models[("resnet_stub", "1")].values["nv_inference_count"] == 300
    assert len(scrape.problems) == 1 and "unparseable line" in scrape.problems[0]


# --------------------------------------------------------------------------- /v2/models/stats


def test_stats_capture() -> None:
    scrape = parse_stats(doc("models_stats.json"))
    resnet = scrape.models[("resnet_stub", "1")]
    assert resnet.inference_count == 300
    assert resnet.execution_count == 58
    assert resnet.success.count == 300 and resnet.success.ns == 5209363276
    assert resnet.queue.ns == 1669316292
    assert resnet.batch_executions == {1: 1, 2: 4, 3: 2, 4: 9, 5: 19, 6: 12, 7: 6, 8: 5}
    assert sum(b * n for b, n in resnet.batch_executions.items()) == resnet.inference_count
    assert sum(resnet.batch_executions.values()) == resnet.execution_count
    assert resnet.last_inference_ms == 1795558297158
    assert scrape.problems == {}


def test_stats_of_a_failing_and_an_idle_model() -> None:
    scrape = parse_stats(doc("models_stats_failures.json"))
    assert scrape.models[("bert_raise", "1")].fail.count == 41
    idle = scrape.models[("bert_stub", "1")]
    assert idle.last_inference_ms is None  # Triton says 0: it never ran
    assert idle.batch_executions == {}


@pytest.mark.parametrize(
    ("body", "match"),
    [
        ([], "expected a JSON object"),
        ({"model_stats": "x"}, "model_stats: expected a list, got the string 'x'"),
        ({"error": "statistics are restricted"}, "model_stats: expected a list, got nothing"),
    ],
)
def test_stats_of_the_wrong_shape(body: Any, match: str) -> None:
    with pytest.raises(ShapeError, match=re.escape(match)):
        parse_stats(body)


def test_one_bad_stats_entry_is_a_problem_of_that_model_only() -> None:
    body = copy.deepcopy(doc("models_stats.json"))
    body["model_stats"][0]["inference_stats"]["queue"]["ns"] = "lots"
    body["model_stats"][1]["inference_count"] = "300"  # protobuf's JSON quotes 64-bit integers
    scrape = parse_stats(body)
    bad = body["model_stats"][0]["name"]
    assert bad in scrape.problems
    assert "inference_stats.queue.ns: expected a non-negative integer, got 'lots'" in scrape.problems[bad]
    assert scrape.models[(body["model_stats"][1]["name"], "1")].inference_count == 300


def stats_entries() -> list[tuple[str, Any]]:
    """Every statistics entry of every capture: each fixture that holds `model_stats`, every
    frame of the demo's recording, and variants the fast path must read alike (no batches, no
    last_inference, a batch size listed twice, the cache leaves gone or counting)."""
    found: list[tuple[str, Any]] = []
    for path in sorted(DATA.glob("*.json")):
        body = json.loads(path.read_text())
        if isinstance(body, dict) and "model_stats" in body:
            found += [(f"{path.name}[{i}]", e) for i, e in enumerate(body["model_stats"])]
    for n, frame in enumerate(load_recording().frames):
        for i, e in enumerate((frame.get("stats") or {}).get("model_stats", [])):
            found.append((f"demo frame {n}[{i}]", e))
    base = doc("models_stats.json")["model_stats"][1]
    no_batches = {k: v for k, v in base.items() if k not in ("batch_stats", "last_inference")}
    twice = copy.deepcopy(base)
    twice["batch_stats"].append(copy.deepcopy(twice["batch_stats"][0]))
    no_cache = copy.deepcopy(base)
    del no_cache["inference_stats"]["cache_hit"], no_cache["inference_stats"]["cache_miss"]
    cached = copy.deepcopy(base)  # the captures' cache leaves are all 0: give them distinct counts
    cached["inference_stats"]["cache_hit"] = {"count": 7, "ns": 700}
    cached["inference_stats"]["cache_miss"] = {"count": 3, "ns": 900}
    found += [
        ("no batch_stats", no_batches),
        ("a batch size twice", twice),
        ("no cache leaves", no_cache),
        ("a cache that answered", cached),
    ]
    return found


def test_the_fast_and_the_careful_stats_paths_agree_on_every_capture() -> None:
    entries = stats_entries()
    fixtures = {name.split("[")[0] for name, _ in entries if name.endswith("]") and ".json" in name}
    assert fixtures == {"models_stats.json", "models_stats_failures.json"}
    assert sum(name.startswith("demo frame") for name, _ in entries) > 700  # 5 models, 150 frames
    for name, entry in entries:
        fast = read_entry_fast(entry)
        assert fast is not None, name  # a well-formed capture never needs the careful path
        assert fast == read_entry(entry, name), name


def test_the_fast_stats_path_hands_anything_unusual_to_the_careful_one() -> None:
    base = doc("models_stats.json")["model_stats"][1]
    quoted = copy.deepcopy(base)
    quoted["inference_count"] = "300"  # protobuf's JSON quotes 64-bit integers
    whole_float = copy.deepcopy(base)
    whole_float["inference_stats"]["queue"]["ns"] = 1669316292.0
    for entry in (quoted, whole_float):
        assert read_entry_fast(entry) is None
        assert read_entry(entry, "e") == read_entry_fast(base)
    negative = copy.deepcopy(base)
    negative["execution_count"] = -1
    assert read_entry_fast(negative) is None
    with pytest.raises(ShapeError, match=re.escape("e.execution_count: expected a non-negative integer")):
        read_entry(negative, "e")


# --------------------------------------------------------------------------- config, index, server


def test_config_capture() -> None:
    cfg = parse_config(doc("resnet_stub_config.json"))
    assert cfg.max_batch_size == 32
    assert cfg.dynamic_batching
    assert cfg.preferred_batch_sizes == (8, 16)
    assert cfg.max_queue_delay_seconds == pytest.approx(0.002)
    assert (cfg.instance_count, cfg.instance_kind, cfg.gpu_devices) == (2, "CPU", ())
    assert (cfg.backend, cfg.platform, cfg.ensemble_steps) == ("python", None, ())


def test_config_of_gpu_instances_counts_per_listed_gpu() -> None:
    body = copy.deepcopy(doc("resnet_stub_config.json"))
    body["instance_group"] = [
        {"kind": "KIND_GPU", "count": 2, "gpus": [0, 1]},
        {"kind": "KIND_CPU", "count": 1},
    ]
    cfg = parse_config(body)
    assert cfg.instance_count == 5
    assert cfg.instance_kind == "GPU+CPU"
    assert cfg.gpu_devices == (0, 1)


def test_config_of_an_ensemble_lists_its_steps_in_order() -> None:
    cfg = parse_config(doc("pipeline_config.json"))
    assert cfg.platform == "ensemble"
    assert cfg.ensemble_steps == ("prep", "resnet")
    assert cfg.instance_count is None


def test_config_of_the_wrong_shape() -> None:
    body = copy.deepcopy(doc("resnet_stub_config.json"))
    body["dynamic_batching"]["preferred_batch_size"] = "8,16"
    with pytest.raises(ShapeError, match="preferred_batch_size: expected a list"):
        parse_config(body)
    with pytest.raises(ShapeError, match="max_batch_size: expected a non-negative integer"):
        parse_config({"max_batch_size": -1})


def test_index_capture_and_a_load_error() -> None:
    rows = parse_index(doc("repository_index.json"))
    assert [(r.name, r.version, r.state) for r in rows] == [
        ("bert_stub", "1", "READY"),
        ("resnet_stub", "1", "READY"),
    ]
    # A real index with a model whose initialize raised: the reason's first line, no traceback.
    real = {r.name: r for r in parse_index(doc("repository_index_load_error.json"))}
    assert real["broken"].state == "UNAVAILABLE"
    assert real["broken"].reason == "Internal: RuntimeError: fail_init is set: this model refuses to load"
    assert real["resnet"].state == "READY" and real["resnet"].reason is None
    never_loaded = parse_index([{"name": "never_loaded"}])[0]  # explicit model control, not loaded
    assert (never_loaded.version, never_loaded.state) == (None, None)
    with pytest.raises(ShapeError, match="expected a list of models"):
        parse_index({"models": []})


def test_index_states_become_model_states_and_a_newer_word_is_kept() -> None:
    rows = parse_index(
        [
            {"name": "a", "version": "1", "state": "READY"},
            {"name": "b", "version": "1", "state": "unloading"},
            {"name": "c", "version": "1", "state": "PAUSED", "reason": "a newer Triton's state"},
            {"name": "d", "state": ""},
        ]
    )
    assert [r.state for r in rows] == [ModelState.READY, ModelState.UNLOADING, "PAUSED", None]
    assert [type(r.state) for r in rows] == [ModelState, ModelState, str, type(None)]
    assert (
        model_state("LOADING") is ModelState.LOADING and model_state("Unavailable") is ModelState.UNAVAILABLE
    )
    assert model_state("PAUSED") == "PAUSED" and not isinstance(model_state("PAUSED"), ModelState)


def test_server_metadata_and_versions() -> None:
    assert parse_server_metadata({"name": "triton", "version": "2.51.0", "extensions": []}) == "2.51.0"
    assert version_tuple("2.51.0") == (2, 51, 0)
    assert version_tuple("2.38.0dev") == (2, 38, 0)
    assert version_tuple(None) is None
