"""GET /ready: 200 when tokens and deployments are there, else 503 saying what is missing."""

from __future__ import annotations

import json
import threading

import pytest
import responses

from app import create_app, runtime
from app.config import Subaccount
from tests.http_fakes import API_URL, HAIKU, SONNET, TOKEN_URL, deployment_url, \
    make_settings, service_key, token_calls

DEPLOYMENTS = API_URL + "/v2/lm/deployments"


def deployment(dep_id: str, model: str) -> dict:
    return {"id": dep_id, "status": "RUNNING", "targetStatus": "RUNNING",
            "scenarioId": "foundation-models", "deploymentUrl": deployment_url(dep_id),
            "details": {"resources": {"backend_details": {"model": {"name": model}}}}}


def discovering_settings(tmp_path, models: dict):
    sub = Subaccount(name="sub1", service_key=service_key(), resource_group="rg-test",
                     deployment_models=models, discover=True)
    return make_settings(tmp_path, subaccounts=(sub,))


@pytest.fixture
def serve():
    """Build the app from settings; the runtime is dropped after the test."""
    def build(settings):
        return create_app(settings).test_client()
    yield build
    runtime.install(None)


def test_ready_without_a_client_key_and_the_token_is_fetched_once(serve, upstream, tmp_path):
    client = serve(make_settings(tmp_path))
    first, second = client.get("/ready"), client.get("/ready")
    assert first.status_code == second.status_code == 200
    assert first.get_json() == {"status": "ready", "problems": [],
                                "models": {HAIKU: 1, SONNET: 1}}
    assert first.headers["Cache-Control"] == "no-store"
    assert token_calls(upstream) == 1  # the second probe reused the cached token
    assert client.head("/ready").status_code == 200


def test_identity_service_refusal_is_503_naming_the_subaccount(serve, tmp_path):
    with responses.RequestsMock() as mock:
        mock.add(responses.POST, TOKEN_URL, status=401,
                 json={"error": "unauthorized", "error_description": "Bad credentials"})
        resp = serve(make_settings(tmp_path)).get("/ready")
    assert resp.status_code == 503
    body = resp.get_json()
    assert body["status"] == "not ready"
    assert body["problems"] == [{
        "subaccount": "sub1", "problem": "token",
        "detail": "upstream authentication failed: the SAP identity service answered 401"}]
    text = resp.get_data(as_text=True)
    assert service_key().client_secret not in text and "Basic" not in text


def test_a_configured_model_discovery_did_not_find_is_named(serve, upstream, tmp_path):
    upstream.add(responses.GET, DEPLOYMENTS,
                 json={"count": 1, "resources": [deployment("d-haiku", HAIKU)]})
    client = serve(discovering_settings(tmp_path, {SONNET: (), HAIKU: ()}))
    assert runtime.current().registry.wait_ready(5)
    resp = client.get("/ready")
    assert resp.status_code == 503
    assert resp.get_json()["problems"] == [{
        "subaccount": "sub1", "model": SONNET, "problem": "deployments",
        "detail": "no RUNNING deployment of this model was found"}]
    assert resp.get_json()["models"] == {HAIKU: 1}


def test_failed_discovery_is_named(serve, upstream, tmp_path):
    upstream.add(responses.GET, DEPLOYMENTS, status=500, json={"message": "boom"})
    client = serve(discovering_settings(tmp_path, {}))
    assert runtime.current().registry.wait_ready(5)
    resp = client.get("/ready")
    assert resp.status_code == 503
    assert resp.get_json()["problems"] == [{
        "subaccount": "sub1", "problem": "deployments",
        "detail": "deployment discovery failed: HTTP 500"}]


def test_no_deployment_anywhere_is_not_ready(serve, upstream, tmp_path):
    upstream.add(responses.GET, DEPLOYMENTS, json={"count": 0, "resources": []})
    client = serve(discovering_settings(tmp_path, {}))
    assert runtime.current().registry.wait_ready(5)
    resp = client.get("/ready")
    assert resp.status_code == 503
    assert "no model to serve" in resp.get_json()["problems"][0]["detail"]


def test_pending_discovery_is_503_at_once_then_ready(serve, upstream, tmp_path):
    release, asked = threading.Event(), threading.Event()

    def slow_listing(request):
        asked.set()
        release.wait(10)
        return 200, {}, json.dumps({"count": 1, "resources": [deployment("d-s", SONNET)]})

    upstream.add_callback(responses.GET, DEPLOYMENTS, callback=slow_listing)
    client = serve(discovering_settings(tmp_path, {}))
    try:
        assert asked.wait(5)
        pending = client.get("/ready")
    finally:
        release.set()
    assert pending.status_code == 503
    assert pending.get_json()["problems"] == [{
        "problem": "deployments", "detail": "the first deployment discovery has not finished yet"}]
    assert runtime.current().registry.wait_ready(5)
    assert client.get("/ready").status_code == 200


def test_health_stays_liveness_only(serve, tmp_path):
    with responses.RequestsMock() as mock:  # no SAP endpoint registered: any call would fail
        resp = serve(make_settings(tmp_path)).get("/health")
        assert len(mock.calls) == 0
    assert resp.status_code == 200
