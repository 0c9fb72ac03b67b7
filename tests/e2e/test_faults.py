"""Fault injection: the real gunicorn gateway against a misbehaving fake SAP AI Core.

Each test uses its own SAP model (with its own deployments), so the cooldowns one
test causes in the gateway's workers never leak into another.
"""

from __future__ import annotations

import concurrent.futures
import json
import signal
import threading
import time

import anthropic
import pytest
import requests

from tests.e2e.conftest import GATEWAY_KEY, Gateway, gateway_config
from app.simulator import FakeAICore, Step

pytestmark = pytest.mark.e2e

MODELS = {
    "one429": ("anthropic--claude-4.5-sonnet", ["s1", "s2", "s3"]),
    "all429": ("anthropic--claude-4.5-haiku", ["h1", "h2"]),
    "burst": ("anthropic--claude-4.5-opus", ["o1", "o2"]),
    "reset": ("anthropic--claude-4-sonnet", ["r1"]),
    "slow": ("anthropic--claude-4.1-opus", ["w1", "w2"]),
    "stall": ("anthropic--claude-3.7-sonnet", ["t1", "t2"]),
    "throttle_event": ("anthropic--claude-4-opus", ["e1", "e2"]),
    "tokens": ("anthropic--claude-4.6-sonnet", ["k1", "k2"]),
    "sigterm": ("anthropic--claude-4.6-opus", ["g1"]),
}


@pytest.fixture(scope="module")
def fake():
    with FakeAICore(token_ttl=3600) as server:
        for model, deployments in MODELS.values():
            for dep in deployments:
                server.add_deployment(dep, model)
        yield server


@pytest.fixture(scope="module")
def gateway(fake, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("faults")
    # The deadline is shorter than the first-event wait, as with the defaults (20 s vs 60 s):
    # a deployment that times out still gets a successor.
    config = gateway_config(fake, workdir, stream_idle_timeout=1.5, first_event_timeout=1.0,
                            failover_deadline=0.5)
    server = Gateway(config, workdir)
    yield server
    server.stop()


def body(model: str, stream: bool = False, text: str = "hi") -> dict:
    return {"model": model, "max_tokens": 100, "stream": stream,
            "messages": [{"role": "user", "content": text}]}


def post(gateway, payload, **kwargs):
    return requests.post(gateway.url + "/v1/messages", json=payload, timeout=30,
                         headers={"x-api-key": GATEWAY_KEY}, **kwargs)


def served_by(fake, deployments):
    return [r.deployment_id for r in fake.inference_requests if r.deployment_id in deployments]


def test_one_deployment_always_429_every_request_still_succeeds(gateway, fake):
    model, deps = MODELS["one429"]
    fake.script("s1", *[Step(status=429, retry_after=30)] * 50)
    statuses = [post(gateway, body(model)).status_code for _ in range(20)]
    assert statuses == [200] * 20
    seen = served_by(fake, deps)
    assert "s2" in seen and "s3" in seen
    # once cooling, s1 is skipped: at most one 429 per worker (2 workers)
    assert 1 <= seen.count("s1") <= 2


def test_all_deployments_429_gives_429_with_retry_after(gateway, fake):
    model, deps = MODELS["all429"]
    for dep in deps:
        fake.script(dep, *[Step(status=429, retry_after=7)] * 10)
    client = anthropic.Anthropic(base_url=gateway.url, api_key=GATEWAY_KEY, max_retries=0)
    with pytest.raises(anthropic.RateLimitError) as info:
        client.messages.create(**{k: v for k, v in body(model).items() if k != "stream"})
    retry_after = int(info.value.response.headers["retry-after"])
    assert 1 <= retry_after <= 7
    # the same worker now answers at once without calling SAP AI Core
    before = len(served_by(fake, deps))
    resp = post(gateway, body(model))
    assert resp.status_code == 429 and 1 <= int(resp.headers["retry-after"]) <= 7
    assert len(served_by(fake, deps)) - before <= 2


def test_5xx_burst_fails_over(gateway, fake):
    model, deps = MODELS["burst"]
    fake.script("o1", 500, 503, 529, 500)
    statuses = [post(gateway, body(model, stream=True)).status_code for _ in range(8)]
    assert statuses == [200] * 8


def test_connection_reset_mid_stream_gives_event_error(gateway, fake):
    model, _ = MODELS["reset"]
    fake.script("r1", Step(eof_after_events=4))
    resp = post(gateway, body(model, stream=True))
    events = [line[7:] for line in resp.text.splitlines() if line.startswith("event: ")]
    assert events[0] == "message_start" and events[-1] == "error"
    assert "message_stop" not in events
    error = json.loads(resp.text.strip().splitlines()[-1][6:])
    assert error["type"] == "error" and error["error"]["type"] in ("overloaded_error", "api_error")


def test_slow_headers_fail_over(gateway, fake):
    model, _ = MODELS["slow"]
    fake.script("w1", Step(headers_delay=4), Step(headers_delay=4))
    started = time.monotonic()
    statuses = [post(gateway, body(model, stream=True)).status_code for _ in range(2)]
    assert statuses == [200, 200]
    assert time.monotonic() - started < 8


def test_stall_before_first_event_fails_over(gateway, fake):
    model, deps = MODELS["stall"]
    fake.script("t1", Step(first_event_delay=3), Step(first_event_delay=3))
    resp = post(gateway, body(model, stream=True))
    resp2 = post(gateway, body(model, stream=True))
    for r in (resp, resp2):
        assert r.status_code == 200 and "message_stop" in r.text


def test_throttling_as_first_event_fails_over(gateway, fake):
    model, _ = MODELS["throttle_event"]
    fake.script("e1", *[Step(error_event="typed_overloaded", error_after_events=0)] * 2)
    for _ in range(2):
        resp = post(gateway, body(model, stream=True))
        assert resp.status_code == 200
        assert "message_stop" in resp.text and "event: error" not in resp.text


def test_token_expiry_and_revocation_during_load_are_invisible(gateway, fake):
    model, _ = MODELS["tokens"]
    stop = time.monotonic() + 4
    results: list[int] = []

    def worker():
        while time.monotonic() < stop and len(results) < 400:
            results.append(post(gateway, body(model, stream=True)).status_code)

    calls_before = fake.token_calls
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(worker) for _ in range(8)]
        time.sleep(1.0)
        fake.revoke_tokens()
        time.sleep(1.0)
        fake.revoke_tokens()
        for f in futures:
            f.result()
    assert results and set(results) == {200}
    assert fake.token_calls - calls_before >= 2  # both revocations were noticed


def test_identity_service_down_is_a_clear_502(fake, tmp_path):
    # A fresh gateway (no cached token) against an IdP that answers 503.
    fake.idp_down = True
    gateway = Gateway(gateway_config(fake, tmp_path), tmp_path, workers=1)
    try:
        resp = post(gateway, body(MODELS["one429"][0]))
        assert resp.status_code == 502
        error = resp.json()["error"]
        assert error["type"] == "api_error" and "identity service" in error["message"]
        assert gateway.proc.poll() is None  # no crash loop
        assert post(gateway, body(MODELS["one429"][0])).status_code == 502
    finally:
        fake.idp_down = False
        gateway.stop()


def test_sigterm_lets_running_streams_finish(fake, tmp_path):
    model, _ = MODELS["sigterm"]
    gateway = Gateway(gateway_config(fake, tmp_path), tmp_path, workers=1)
    fake.script("g1", *[Step(gap_after_event=(2, 2.0))] * 3)
    outputs: list[str] = []

    def stream():
        outputs.append(post(gateway, body(model, stream=True)).text)

    threads = [threading.Thread(target=stream) for _ in range(3)]
    for t in threads:
        t.start()
    time.sleep(0.8)
    gateway.proc.send_signal(signal.SIGTERM)
    for t in threads:
        t.join(15)
    gateway.stop()
    assert len(outputs) == 3
    for text in outputs:
        assert "event: message_stop" in text and "event: error" not in text
