"""The failover loop's final answers, through the Flask app with SAP AI Core faked by
`responses`: what a client sees when deployments fail in different ways."""

from __future__ import annotations

import time

import pytest
import responses

from app import create_app, runtime
from tests.http_fakes import (CLIENT_KEY, SONNET, TOKEN_URL, bedrock_message, deployment_url,
                              make_settings, simple_body)

HEADERS = {"x-api-key": CLIENT_KEY}


@pytest.fixture
def two(tmp_path, upstream):
    app = create_app(make_settings(tmp_path, models={SONNET: ["d-a", "d-b"]}))
    yield app.test_client()
    runtime.install(None)


@pytest.fixture
def one(tmp_path, upstream):
    app = create_app(make_settings(tmp_path, models={SONNET: ["d-only"]}))
    yield app.test_client()
    runtime.install(None)


def invoke(dep: str) -> str:
    return deployment_url(dep) + "/invoke"


def calls(upstream, dep: str) -> int:
    return sum(1 for c in upstream.calls if c.request.url == invoke(dep))


def test_a_lone_deployment_that_failed_once_is_tried_again_not_reported_throttled(one, upstream):
    upstream.add(responses.POST, invoke("d-only"), status=500, json={"message": "boom"})
    upstream.add(responses.POST, invoke("d-only"), json=bedrock_message())
    first = one.post("/v1/messages", json=simple_body(), headers=HEADERS)
    assert first.status_code == 500 and first.get_json()["error"]["type"] == "api_error"
    second = one.post("/v1/messages", json=simple_body(), headers=HEADERS)
    assert second.status_code == 200
    assert calls(upstream, "d-only") == 2


def test_a_lone_throttled_deployment_is_respected(one, upstream):
    upstream.add(responses.POST, invoke("d-only"), status=429, headers={"Retry-After": "20"},
                 json={"message": "Too many requests"})
    assert one.post("/v1/messages", json=simple_body(), headers=HEADERS).status_code == 429
    again = one.post("/v1/messages", json=simple_body(), headers=HEADERS)
    assert again.status_code == 429 and 1 <= int(again.headers["retry-after"]) <= 20
    assert calls(upstream, "d-only") == 1  # the cooldown answered, not SAP AI Core


def test_a_throttle_beside_a_gone_deployment_is_reported_as_the_retryable_429(two, upstream):
    upstream.add(responses.POST, invoke("d-a"), status=429, json={"message": "Too many requests"})
    upstream.add(responses.POST, invoke("d-b"), status=404, json={"message": "not found"})
    resp = two.post("/v1/messages", json=simple_body(), headers=HEADERS)
    assert resp.status_code == 429 and resp.get_json()["error"]["type"] == "rate_limit_error"
    assert 1 <= int(resp.headers["retry-after"]) <= 60


def test_an_unreadable_retry_after_is_replaced_by_the_default(two, upstream):
    for dep in ("d-a", "d-b"):
        upstream.add(responses.POST, invoke(dep), status=429, headers={"Retry-After": "inf"},
                     json={"message": "Too many requests"})
    resp = two.post("/v1/messages", json=simple_body(), headers=HEADERS)
    assert resp.status_code == 429 and 1 <= int(resp.headers["retry-after"]) <= 60


def test_an_identity_service_outage_stays_a_clear_502_and_cools_nothing(tmp_path, monkeypatch):
    from app.upstream import oauth

    monkeypatch.setattr(oauth, "FAILURE_MEMORY_SECONDS", 0.2)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.add(responses.POST, TOKEN_URL, status=503, body="down")
        app = create_app(make_settings(tmp_path, models={SONNET: ["d-a", "d-b"]}))
        try:
            client = app.test_client()
            for _ in range(3):
                resp = client.post("/v1/messages", json=simple_body(), headers=HEADERS)
                assert resp.status_code == 502
                assert "identity service" in resp.get_json()["error"]["message"]
            mock.replace(responses.POST, TOKEN_URL,
                         json={"access_token": "tok", "expires_in": 3600})
            mock.add(responses.POST, invoke("d-a"), json=bedrock_message())
            mock.add(responses.POST, invoke("d-b"), json=bedrock_message())
            time.sleep(0.3)  # past the token provider's failure memory
            assert client.post("/v1/messages", json=simple_body(),
                               headers=HEADERS).status_code == 200
        finally:
            runtime.install(None)


@pytest.mark.parametrize("body", [
    simple_body(system="\ud800 lone surrogate"),
    simple_body(metadata={"user_id": "\udfff"}),
    simple_body(messages=[{"role": "user", "content": "cut \ud83d"}]),
])
def test_lone_surrogates_are_forwarded_escaped_not_a_500(two, upstream, body):
    for dep in ("d-a", "d-b"):
        upstream.add(responses.POST, invoke(dep), json=bedrock_message())
    resp = two.post("/v1/messages", json=body, headers=HEADERS)
    assert resp.status_code == 200, resp.get_data()
    sent = next(c.request.body for c in upstream.calls if "/invoke" in c.request.url)
    assert b"\\ud8" in sent or b"\\udf" in sent  # kept as the client's JSON escape
