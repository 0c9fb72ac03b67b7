"""Metrics and JSON logs through the real gunicorn (2 gevent workers) against the fake SAP AI Core.

A known load goes in (20 streamed and 10 whole answers from two client keys, one unknown
model, one invalid body); every scrape, whichever worker answers it, must show the exact
sums over both workers; the in-flight gauge follows an open stream and drops back to 0
even when the worker carrying it is killed (gunicorn's ``child_exit`` hook); nothing
secret appears in the scrape or the logs.
"""

from __future__ import annotations

import json
import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from app.simulator import Step
from tests.e2e.conftest import GATEWAY_KEY, HAIKU, SONNET, Gateway, gateway_config

pytestmark = pytest.mark.e2e

TEAM_KEY = "team-m-client-key-5150"
SCRAPE_TOKEN = "prometheus-scrape-token-77"
SCRAPE = {"Authorization": "Bearer " + SCRAPE_TOKEN}
ROUTE = "/v1/messages"
USAGE_KEYS = ("input_tokens", "output_tokens", "cache_read_input_tokens",
              "cache_creation_input_tokens")
KIND = dict(zip(USAGE_KEYS, ("input", "output", "cache_read", "cache_write")))


@pytest.fixture(scope="module")
def gw(fake, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("metrics-gateway")
    config = gateway_config(fake, workdir, metrics={"token": SCRAPE_TOKEN}, log_format="json")
    config["secret_authentication_tokens"] = [{"key": GATEWAY_KEY, "label": "e2e"},
                                              {"key": TEAM_KEY, "label": "team-m"}]
    server = Gateway(config, workdir, workers=2)
    yield server
    server.stop()


def scrape(gw: Gateway) -> dict[tuple, float]:
    # a new connection per scrape, so the workers take turns answering
    resp = requests.get(gw.url + "/metrics", headers={**SCRAPE, "Connection": "close"},
                        timeout=10)
    assert resp.status_code == 200, resp.text
    out = {}
    for family in text_string_to_metric_families(resp.text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    out["_text"] = resp.text  # type: ignore[index]
    return out


def get(samples: dict, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def total(samples: dict, name: str, **labels) -> float:
    """The sum over every series of ``name`` that has these labels (and maybe others)."""
    want = set(labels.items())
    return sum(v for key, v in samples.items()
               if key != "_text" and key[0] == name and want <= set(key[1]))


def call(gw: Gateway, key: str, model: str, stream: bool) -> dict[str, int]:
    """One request; the usage the client saw (final values of a stream)."""
    body = {"model": model, "max_tokens": 100, "stream": stream,
            "messages": [{"role": "user", "content": "say hello"}]}
    resp = requests.post(gw.url + ROUTE, json=body, timeout=30,
                         headers={"x-api-key": key, "Connection": "close",
                                  "User-Agent": "metrics-e2e/1.0"})
    assert resp.status_code == 200, resp.text
    if not stream:
        return {k: resp.json()["usage"].get(k, 0) for k in USAGE_KEYS}
    usage: dict[str, int] = {}
    for line in resp.text.splitlines():
        if line.startswith("data: "):
            event = json.loads(line[6:])
            found = event.get("usage") or event.get("message", {}).get("usage") or {}
            usage.update({k: v for k, v in found.items() if k in USAGE_KEYS})
    assert "message_stop" in resp.text
    return {k: usage.get(k, 0) for k in USAGE_KEYS}


def access_lines(gw: Gateway) -> list[dict]:
    lines = []
    for line in gw.output().splitlines():
        if line.startswith("{"):
            entry = json.loads(line)  # every gateway line is JSON
            if entry["logger"] == "gateway.access":
                lines.append(entry)
    return lines


def test_known_load_is_summed_exactly_across_workers(gw, fake):
    jobs = ([(GATEWAY_KEY, SONNET, True)] * 12 + [(TEAM_KEY, HAIKU, True)] * 8 +
            [(GATEWAY_KEY, SONNET, False)] * 6 + [(TEAM_KEY, "claude-haiku-4-5", False)] * 4)
    with ThreadPoolExecutor(max_workers=6) as pool:
        usages = list(pool.map(lambda job: call(gw, *job), jobs))
    unknown = requests.post(gw.url + ROUTE, headers={"x-api-key": GATEWAY_KEY}, timeout=10,
                            json={"model": "gpt-nothing", "max_tokens": 10,
                                  "messages": [{"role": "user", "content": "hi"}]})
    invalid = requests.post(gw.url + ROUTE, headers={"x-api-key": GATEWAY_KEY}, timeout=10,
                            json={"model": "claude-sonnet-4-5", "messages": []})
    assert (unknown.status_code, invalid.status_code) == (404, 400)

    expected: dict[tuple[str, str, str], int] = {}
    for (key, model, _), usage in zip(jobs, usages):
        label, sap = ("e2e", SONNET) if key == GATEWAY_KEY else ("team-m", HAIKU)
        for name, n in usage.items():
            expected[(sap, label, KIND[name])] = expected.get((sap, label, KIND[name]), 0) + n
    assert expected[(SONNET, "e2e", "input")] > 0 and expected[(HAIKU, "team-m", "output")] > 0

    # Which worker accepts a connection is up to the kernel; under load one may take all.
    # Cheap requests on new connections until both workers have answered some, so the
    # sums below are certainly sums over two workers' files.
    hello = spread_over_both_workers(gw, "/api/hello")

    scrapes = [scrape(gw) for _ in range(6)]
    for s in scrapes:
        assert get(s, "gateway_requests_total", route="/api/hello", model="-", status="200") \
            == hello
        assert get(s, "gateway_requests_total", route=ROUTE, model=SONNET, status="200") == 18
        assert get(s, "gateway_requests_total", route=ROUTE, model=HAIKU, status="200") == 12
        assert get(s, "gateway_requests_total", route=ROUTE, model="-", status="404") == 1
        assert get(s, "gateway_requests_total", route=ROUTE, model="-", status="400") == 1
        for (sap, label, kind), n in expected.items():
            assert get(s, "gateway_tokens_total", model=sap, client=label, kind=kind) == n
        assert get(s, "gateway_time_to_first_event_seconds_count", route=ROUTE, model=SONNET) == 18
        assert get(s, "gateway_request_duration_seconds_count", route=ROUTE, model=HAIKU) == 12
        assert total(s, "gateway_upstream_latency_seconds_count", model=SONNET) == 18
        assert get(s, "gateway_overhead_seconds_count", route=ROUTE, model=HAIKU) == 12
        assert get(s, "gateway_streams_in_flight") == 0
        assert get(s, "gateway_oauth_token_refreshes_total") == fake.token_calls
        assert get(s, "gateway_failovers_total", model=SONNET) == 0

    # the usage log: one line per answered request, same token sums, dated file name
    files = sorted(Path(gw.workdir).glob("usage.log.????-??-??"))
    assert files and files[-1].name == "usage.log." + time.strftime("%Y-%m-%d", time.gmtime())
    usage_lines = [json.loads(l) for f in files for l in f.read_text().splitlines()]
    assert len(usage_lines) == 30
    assert sum(l["input_tokens"] for l in usage_lines if l["key"] == "e2e") == \
        expected[(SONNET, "e2e", "input")]


def test_json_access_lines(gw):
    lines = [l for l in access_lines(gw) if l["route"] == ROUTE]
    assert len(lines) == 32
    for line in lines:
        assert line["client_addr"] == "127.0.0.1"
        assert line["user_agent"] == ("metrics-e2e/1.0" if line["status"] == 200
                                      else "python-requests/" + requests.__version__)
        assert line["key"] in ("e2e", "team-m") and line["request_id"]
    assert not [l for l in access_lines(gw) if l["route"] == "/metrics"]  # scrapes: DEBUG


def test_scrapes_need_the_token(gw):
    assert requests.get(gw.url + "/metrics", timeout=10).status_code == 403
    wrong = requests.get(gw.url + "/metrics", headers={"Authorization": "Bearer " + GATEWAY_KEY},
                         timeout=10)
    assert wrong.status_code == 403 and "gateway_" not in wrong.text


def test_in_flight_follows_a_stream_and_survives_a_killed_worker(gw, fake):
    fake.script("d-sonnet", Step(gap_after_event=(1, 8)))
    held = requests.post(gw.url + ROUTE, stream=True, timeout=30,
                         headers={"x-api-key": GATEWAY_KEY},
                         json={"model": SONNET, "max_tokens": 50, "stream": True,
                               "messages": [{"role": "user", "content": "hi"}]})
    try:
        # keep the iterator: a dropped one makes urllib3 close the connection at once
        chunks = held.iter_content(chunk_size=None)
        next(chunks)
        before = scrape(gw)
        assert get(before, "gateway_streams_in_flight") == 1, gw.output()[-3000:]
        workers = worker_pids(gw.proc.pid)
        assert len(workers) == 2, workers
        for pid in workers:
            os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            fresh = worker_pids(gw.proc.pid)
            if len(fresh) == 2 and not fresh & workers:
                try:
                    if requests.get(gw.url + "/health", timeout=2).status_code == 200:
                        break
                except requests.RequestException:
                    pass
            time.sleep(0.2)
        else:
            pytest.fail("gunicorn did not replace its killed workers:\n" + gw.output()[-3000:])
        after = scrape(gw)
    finally:
        held.close()
    assert get(after, "gateway_streams_in_flight") == 0, gw.output()[-3000:]
    # the dead workers' counters still count: the load, and the scrape before the kill
    ok = {"route": ROUTE, "model": SONNET, "status": "200"}
    assert get(after, "gateway_requests_total", **ok) == \
        get(before, "gateway_requests_total", **ok) > 0
    scrapes = {"route": "/metrics", "model": "-", "status": "200"}
    assert get(after, "gateway_requests_total", **scrapes) == \
        get(before, "gateway_requests_total", **scrapes) + 1


def test_no_secret_in_scrapes_or_logs(gw, fake):
    text = scrape(gw)["_text"] + gw.output() + "".join(
        f.read_text() for f in Path(gw.workdir).glob("usage.log.*"))
    for secret in (GATEWAY_KEY, TEAM_KEY, SCRAPE_TOKEN, fake.client_secret, "tok-1", "tok-2"):
        assert secret not in text


def spread_over_both_workers(gw: Gateway, path: str, limit: int = 400) -> int:
    """GET ``path`` (a new connection each time) until two worker pids answered it, at most
    ``limit`` times; how many requests were sent."""
    for sent in range(1, limit + 1):
        assert requests.get(gw.url + path, headers={"Connection": "close"},
                            timeout=10).status_code == 200
        if sent % 5 == 0:
            time.sleep(0.05)  # idle moments let the other worker win an accept
            if len({l["pid"] for l in access_lines(gw) if l["route"] == path}) == 2:
                return sent
    pytest.fail(f"one worker answered all {limit} requests to {path}")


def worker_pids(master: int) -> set[int]:
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return {int(pid) for pid in children}
