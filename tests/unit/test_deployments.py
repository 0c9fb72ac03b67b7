"""Deployment registry: configured URLs, discovery, refresh failures."""

from __future__ import annotations

import time

import responses

from app.config import Subaccount
from app.upstream.client import build_session
from app.upstream.deployments import DeploymentRegistry
from app.upstream.oauth import TokenProvider
from tests.http_fakes import API_URL, deployment_url, register_token, service_key

LIST_URL = API_URL + "/v2/lm/deployments"


def resource(dep_id, model, status="RUNNING", scenario="foundation-models", camel=False,
             created="2026-01-10T09:00:00Z"):
    details_key = "backendDetails" if camel else "backend_details"
    return {"id": dep_id, "status": status, "targetStatus": status, "scenarioId": scenario,
            "createdAt": created, "deploymentUrl": deployment_url(dep_id) + "/",
            "details": {"resources": {details_key: {"model": {"name": model, "version": "1"}}}}}


def registry(models=None, discover=True):
    key = service_key()
    sub = Subaccount(name="s", service_key=key, resource_group="rg",
                     deployment_models=models or {}, discover=discover)
    session = build_session(4)
    providers = {key.cache_key: TokenProvider(key, session)}
    return DeploymentRegistry([sub], providers, session)


def test_discovery_keeps_running_foundation_models_of_known_families():
    reg = registry()
    with responses.RequestsMock() as mock:
        register_token(mock)
        mock.add(responses.GET, LIST_URL, json={"count": 5, "resources": [
            resource("d1", "anthropic--claude-4.5-sonnet"),
            resource("d2", "anthropic--claude-4.5-sonnet", camel=True, created="2026-02-01"),
            resource("d3", "anthropic--claude-4.5-haiku", status="STOPPED"),
            resource("d4", "gpt-5.4", scenario="orchestration"),
            resource("d5", "mistral-large")]})
        reg.refresh()
        call = next(c for c in mock.calls if c.request.url.startswith(LIST_URL))
        assert call.request.headers["AI-Resource-Group"] == "rg"
        assert "status=RUNNING" in call.request.url
    models = reg.models()
    assert list(models) == ["anthropic--claude-4.5-sonnet"]
    assert [t.deployment_id for t in models["anthropic--claude-4.5-sonnet"]] == ["d1", "d2"]
    assert reg.wait_ready(0)


def test_failed_refresh_keeps_last_good_map():
    reg = registry()
    with responses.RequestsMock() as mock:
        register_token(mock)
        mock.add(responses.GET, LIST_URL, json={"resources": [
            resource("d1", "anthropic--claude-4.5-sonnet")]})
        mock.add(responses.GET, LIST_URL, status=500, body="boom")
        reg.refresh()
        reg.refresh()
    assert list(reg.models()) == ["anthropic--claude-4.5-sonnet"]


def test_models_listed_without_urls_are_discovered_the_others_kept():
    reg = registry(models={"anthropic--claude-4.5-haiku": (),
                           "anthropic--claude-4.5-sonnet": (deployment_url("pinned"),)})
    assert [t.deployment_id for t in reg.models()["anthropic--claude-4.5-sonnet"]] == ["pinned"]
    with responses.RequestsMock() as mock:
        register_token(mock)
        mock.add(responses.GET, LIST_URL, json={"resources": [
            resource("d1", "anthropic--claude-4.5-sonnet"),
            resource("d2", "anthropic--claude-4.5-haiku")]})
        reg.refresh()
    models = reg.models()
    assert [t.deployment_id for t in models["anthropic--claude-4.5-sonnet"]] == ["pinned"]
    assert [t.deployment_id for t in models["anthropic--claude-4.5-haiku"]] == ["d2"]


def test_background_refresher_runs_off_the_request_path():
    reg = registry()
    with responses.RequestsMock() as mock:
        register_token(mock)
        mock.add(responses.GET, LIST_URL, json={"resources": [
            resource("d1", "anthropic--claude-4.5-sonnet")]})
        reg.start(interval=0.05)
        assert reg.wait_ready(5)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and sum(
                c.request.url.startswith(LIST_URL) for c in mock.calls) < 3:
            time.sleep(0.02)
        reg.stop()
        assert sum(c.request.url.startswith(LIST_URL) for c in mock.calls) >= 3

