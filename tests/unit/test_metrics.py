"""Metrics recording: exact values after known requests, on a private registry; the
master-side helpers of gunicorn.conf.py (multiprocess directory, dead workers)."""

from __future__ import annotations

import os
import runpy
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
import responses
from prometheus_client import CollectorRegistry

from app import metrics
from app.log import RequestRecord
from app.metrics import GatewayMetrics
from app.upstream.balancer import Balancer
from app.upstream.deployments import Target
from app.upstream.oauth import TokenProvider
from tests.http_fakes import TOKEN_URL, deployment_url, register_token, service_key

ROOT = Path(__file__).resolve().parents[2]
SONNET = "anthropic--claude-4.5-sonnet"


@pytest.fixture
def m():
    return GatewayMetrics(CollectorRegistry())


def value(m: GatewayMetrics, name: str, **labels) -> float | None:
    return m.registry.get_sample_value(name, labels)


def record(route="/v1/messages", sap_model=SONNET, status=200, key="team-a", deployment="d1",
           usage=None, ttfe=0.2, duration=1.0, upstream_ttfb=None, failovers=0,
           error_type="-", in_flight=False) -> RequestRecord:
    rec = RequestRecord("req_x", "POST", route, route)
    rec.sap_model, rec.status, rec.key_label, rec.deployment = sap_model, status, key, deployment
    rec.usage = usage
    rec.started = 100.0
    rec.first_event_at = None if ttfe is None else 100.0 + ttfe
    rec.ended = 100.0 + duration
    rec.upstream_ttfb = upstream_ttfb
    rec.failovers, rec.error_type, rec.in_flight = failovers, error_type, in_flight
    return rec


def test_counts_histograms_and_tokens_after_known_requests(m):
    usage = {"input_tokens": 100, "output_tokens": 20, "cache_read_input_tokens": 3000,
             "cache_creation_input_tokens": 0}
    for _ in range(3):
        m.record(record(usage=usage, ttfe=0.3, duration=2.0))
    m.record(record(key="team-b", usage=usage, ttfe=0.04, duration=0.08))
    m.record(record(status=429, deployment="-", usage=None, ttfe=None, duration=0.01))
    m.record(record(key="team-c", usage={"input_tokens": "12", "output_tokens": -3,
                                         "cache_read_input_tokens": True, "other": 5},
                    status=502))  # odd upstream counts are ignored, never raise

    assert value(m, "gateway_requests_total", route="/v1/messages", model=SONNET,
                 status="200") == 4
    assert value(m, "gateway_requests_total", route="/v1/messages", model=SONNET,
                 status="429") == 1
    assert value(m, "gateway_tokens_total", model=SONNET, client="team-a", kind="input") == 300
    assert value(m, "gateway_tokens_total", model=SONNET, client="team-a", kind="output") == 60
    assert value(m, "gateway_tokens_total", model=SONNET, client="team-a",
                 kind="cache_read") == 9000
    assert value(m, "gateway_tokens_total", model=SONNET, client="team-b", kind="input") == 100
    assert value(m, "gateway_tokens_total", model=SONNET, client="team-a",
                 kind="cache_write") is None  # zero counts are not incremented
    labels = {"route": "/v1/messages", "model": SONNET}
    assert value(m, "gateway_tokens_total", model=SONNET, client="team-c", kind="input") is None
    assert value(m, "gateway_request_duration_seconds_count", **labels) == 6
    assert value(m, "gateway_request_duration_seconds_sum", **labels) == pytest.approx(7.09)
    assert value(m, "gateway_request_duration_seconds_bucket", le="0.1", **labels) == 2
    assert value(m, "gateway_request_duration_seconds_bucket", le="2.5", **labels) == 6
    assert value(m, "gateway_time_to_first_event_seconds_count", **labels) == 5  # 429: none
    assert value(m, "gateway_time_to_first_event_seconds_bucket", le="0.05", **labels) == 1
    assert value(m, "gateway_time_to_first_event_seconds_sum", **labels) == pytest.approx(1.14)
    # without an upstream latency on the record, neither it nor the overhead is observed
    assert value(m, "gateway_overhead_seconds_count", **labels) is None
    assert value(m, "gateway_upstream_latency_seconds_count", model=SONNET,
                 deployment="d1") is None


def test_overhead_is_time_to_first_event_minus_upstream_latency(m):
    m.record(record(ttfe=0.5, upstream_ttfb=0.497, deployment="d7"))
    m.record(record(ttfe=0.1, upstream_ttfb=0.2, deployment="d7"))  # clock skew: clamped to 0
    labels = {"route": "/v1/messages", "model": SONNET}
    assert value(m, "gateway_overhead_seconds_sum", **labels) == pytest.approx(0.003)
    assert value(m, "gateway_overhead_seconds_bucket", le="0.005", **labels) == 2
    assert value(m, "gateway_upstream_latency_seconds_count", model=SONNET,
                 deployment="d7") == 2
    assert value(m, "gateway_upstream_latency_seconds_sum", model=SONNET,
                 deployment="d7") == pytest.approx(0.697)


def test_failovers_stream_failures_cooldowns_and_in_flight(m):
    m.streams_in_flight.inc()
    m.streams_in_flight.inc()
    m.record(record(failovers=2, in_flight=True))
    m.record(record(error_type="upstream_broke", deployment="d2", in_flight=True))
    m.record(record(error_type="invalid_request_error", status=400, deployment="-"))
    m.cooldown("d1")
    m.cooldown("d1")
    assert value(m, "gateway_failovers_total", model=SONNET) == 2
    assert value(m, "gateway_upstream_errors_total", deployment="d2", phase="mid_stream") == 1
    assert value(m, "gateway_upstream_errors_total", deployment="-", phase="mid_stream") is None
    assert value(m, "gateway_upstream_errors_total", deployment="d1",
                 phase="before_first_byte") == 2
    assert value(m, "gateway_cooldowns_total", deployment="d1") == 2
    assert value(m, "gateway_streams_in_flight") == 0


def test_label_children_are_resolved_once_per_label_tuple(m):
    for _ in range(50):
        m.record(record(usage={"input_tokens": 1}))
        m.record(record(status=500))
    assert len(m._children) == 2
    first = m._children[("/v1/messages", SONNET, 200, "team-a", "d1")]
    m.record(record())
    assert m._children[("/v1/messages", SONNET, 200, "team-a", "d1")] is first


def test_exposition_names_and_no_key_material(m):
    m.record(record(key="team-a", usage={"input_tokens": 5}))
    text = m.exposition().decode()
    for name in ("gateway_requests_total", "gateway_request_duration_seconds_bucket",
                 "gateway_time_to_first_event_seconds_count", "gateway_tokens_total",
                 "gateway_streams_in_flight", "gateway_oauth_token_refreshes_total"):
        assert name in text
    assert 'client="team-a"' in text


def test_finish_records_once_into_the_process_metrics():
    m = metrics.current()
    labels = {"route": "/unit-finish", "model": "-", "status": "204"}
    before = m.registry.get_sample_value("gateway_requests_total", labels) or 0
    rec = RequestRecord("req_y", "GET", "/unit-finish", "/unit-finish")
    rec.finish(204)
    rec.finish(204)
    assert m.registry.get_sample_value("gateway_requests_total", labels) == before + 1


def test_balancer_and_oauth_counters():
    m = metrics.current()
    refreshes = m.registry.get_sample_value("gateway_oauth_token_refreshes_total") or 0
    with responses.RequestsMock() as mock:
        register_token(mock)
        provider = TokenProvider(service_key(), requests.Session())
        provider.token()
        provider.token()  # cached: no second fetch
        assert mock.calls[0].request.url == TOKEN_URL
    assert m.registry.get_sample_value("gateway_oauth_token_refreshes_total") == refreshes + 1
    target = Target(deployment_url("d-cool"), SONNET, "sub1", "rg", provider)
    cooled = m.registry.get_sample_value("gateway_cooldowns_total", {"deployment": "d-cool"}) or 0
    Balancer().cool_down(target, 5)
    assert m.registry.get_sample_value("gateway_cooldowns_total",
                                       {"deployment": "d-cool"}) == cooled + 1


# --------------------------------------------------------------------------- gunicorn hooks

def hooks() -> dict:
    return runpy.run_path(str(ROOT / "gunicorn.conf.py"))


def test_metrics_dir_is_private_or_the_given_one_emptied(tmp_path):
    h = hooks()
    env: dict[str, str] = {}
    own = h["prepare_metrics_dir"](env)
    try:
        assert env["PROMETHEUS_MULTIPROC_DIR"] == own and os.path.isdir(own)
        assert os.listdir(own) == []
    finally:
        h["on_exit"](None)
    assert not os.path.exists(own)

    given = tmp_path / "prom"
    given.mkdir()
    (given / "counter_123.db").write_bytes(b"x")
    (given / "notes.txt").write_text("kept")
    env = {"PROMETHEUS_MULTIPROC_DIR": str(given)}
    assert h["prepare_metrics_dir"](env) == str(given)
    assert sorted(os.listdir(given)) == ["notes.txt"]


def test_dead_worker_files_match_prometheus_client(tmp_path):
    """Two worker processes write real multiprocess files; our child_exit helper removes
    exactly what prometheus_client's own mark_process_dead removes."""
    script = (
        "from prometheus_client import Counter, Gauge, CollectorRegistry\n"
        "r = CollectorRegistry()\n"
        "Counter('c', 'c', registry=r).inc()\n"
        "Gauge('g', 'g', multiprocess_mode='livesum', registry=r).inc()\n"
        "Gauge('h', 'h', multiprocess_mode='liveall', registry=r).inc()\n"
        "Gauge('k', 'k', multiprocess_mode='max', registry=r).set(3)\n"
        "import os; print(os.getpid())\n")
    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    pids = []
    for directory in (ours, theirs):
        directory.mkdir()
        env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory)}
        out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                             text=True, timeout=30, check=True)
        pids.append(int(out.stdout))
    from prometheus_client.multiprocess import mark_process_dead

    hooks()["mark_process_dead"](pids[0], str(ours))
    mark_process_dead(pids[1], str(theirs))
    left_ours = sorted(p.name.replace(str(pids[0]), "PID") for p in ours.iterdir())
    left_theirs = sorted(p.name.replace(str(pids[1]), "PID") for p in theirs.iterdir())
    assert left_ours == left_theirs == ["counter_PID.db", "gauge_max_PID.db"]


def test_prometheus_client_is_not_imported_by_the_master_hooks():
    """The master's hooks must not import prometheus_client (it imports ssl before the
    gevent workers fork)."""
    code = ("import runpy, sys, os\n"
            "h = runpy.run_path('gunicorn.conf.py')\n"
            "env = {}\n"
            "d = h['prepare_metrics_dir'](env)\n"
            "class W: pid = 12345\n"
            "os.environ.update(env)\n"
            "h['child_exit'](None, W())\n"
            "h['on_exit'](None)\n"
            "print('prometheus_client' in sys.modules, 'ssl' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, timeout=30, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_per_request_cost_stays_small(m):
    """A coarse guard (the benchmark in bench/record_cost.py measures it properly)."""
    rec = record(usage={"input_tokens": 10, "output_tokens": 5, "cache_read_input_tokens": 7,
                        "cache_creation_input_tokens": 1}, upstream_ttfb=0.1)
    m.record(rec)
    n = 2000
    started = time.perf_counter()
    for _ in range(n):
        m.record(rec)
    per_request = (time.perf_counter() - started) / n
    assert per_request < 200e-6  # in-process values take a few µs; loose for a shared CI box
