"""POST /v1/messages against a daily token budget: forwarded under it, a 429 once used up."""

from __future__ import annotations

import pytest
import responses

from app import create_app, runtime
from app.budget import record_usage
from tests.http_fakes import CLIENT_KEY, bedrock_message, deployment_url, make_settings, \
    simple_body

INVOKE = deployment_url("d-sonnet") + "/invoke"


@pytest.fixture
def settings(tmp_path):
    return make_settings(tmp_path, budgets={"team-a": 1000},
                         budget_store=str(tmp_path / "budgets.sqlite3"))


@pytest.fixture
def client(settings, upstream):
    app = create_app(settings)
    yield app.test_client()
    runtime.install(None)


def inference_calls(upstream) -> int:
    return sum(1 for call in upstream.calls if call.request.url == INVOKE)


def test_under_budget_the_request_is_forwarded(client, upstream, settings):
    upstream.add(responses.POST, INVOKE, json=bedrock_message())
    record_usage("team-a", {"input_tokens": 999}, settings)
    resp = client.post("/v1/messages", json=simple_body(), headers={"x-api-key": CLIENT_KEY})
    assert resp.status_code == 200
    assert inference_calls(upstream) == 1


def test_used_up_budget_answers_429_without_calling_sap(client, upstream, settings):
    upstream.add(responses.POST, INVOKE, json=bedrock_message())
    record_usage("team-a", {"input_tokens": 600, "output_tokens": 400,
                            "cache_read_input_tokens": 50_000}, settings)
    resp = client.post("/v1/messages", json=simple_body(), headers={"x-api-key": CLIENT_KEY})
    assert resp.status_code == 429
    body = resp.get_json()
    assert body["type"] == "error" and body["error"]["type"] == "rate_limit_error"
    message = body["error"]["message"]
    assert "'team-a'" in message and "1,000 of 1,000 tokens" in message
    assert "resets at " in message and "T00:00:00Z" in message
    assert 1 <= int(resp.headers["retry-after"]) <= 86_400
    assert resp.headers["retry-after-ms"] == str(int(resp.headers["retry-after"]) * 1000)
    assert resp.headers["x-should-retry"] == "false"
    assert resp.headers["request-id"] == body["request_id"]
    assert CLIENT_KEY not in resp.get_data(as_text=True)
    assert inference_calls(upstream) == 0


def test_answered_requests_draw_from_the_budget_until_it_is_used_up(client, upstream, settings):
    """bedrock_message() reports 12 input + 4 output tokens (its 30 cache reads do not count)."""
    upstream.add(responses.POST, INVOKE, json=bedrock_message())
    record_usage("team-a", {"input_tokens": 990}, settings)
    first = client.post("/v1/messages", json=simple_body(), headers={"x-api-key": CLIENT_KEY})
    assert first.status_code == 200  # 990 used: under the budget; 1,006 after it
    second = client.post("/v1/messages", json=simple_body(), headers={"x-api-key": CLIENT_KEY})
    assert second.status_code == 429 and "is used up" in second.get_json()["error"]["message"]
    assert inference_calls(upstream) == 1
