"""Health, models, count_tokens, unknown routes and malformed requests."""

from __future__ import annotations

import json

import pytest

from tests.http_fakes import SONNET, fixture_requests, simple_body


def test_health_needs_no_auth_and_no_upstream(client, upstream):
    resp = client.get("/health")
    assert resp.status_code == 200 and resp.get_json() == {"status": "ok"}
    assert len(upstream.calls) == 0


def test_unknown_path_is_fast_json_404(client, auth_headers):
    resp = client.post("/v1/nothing", headers=auth_headers)
    assert resp.status_code == 404
    assert resp.get_json()["error"]["type"] == "not_found_error"


def test_claude_code_telemetry_is_swallowed(client):
    assert client.post("/api/event_logging/batch", json={"events": []}).status_code == 200
    assert client.head("/api/hello").status_code == 200


def test_models_list_satisfies_anthropic_and_openai_clients(client, auth_headers):
    resp = client.get("/v1/models?limit=1000", headers=auth_headers)
    assert resp.status_code == 200
    body = resp.get_json()
    assert body["object"] == "list" and body["has_more"] is False
    ids = [m["id"] for m in body["data"]]
    assert ids == ["claude-haiku-4-5", "claude-sonnet-4-5"]
    for entry in body["data"]:
        assert entry["type"] == "model" and entry["object"] == "model"
        assert entry["display_name"] and entry["created_at"]
        assert "claude" in entry["id"]


def test_models_need_auth(client):
    assert client.get("/v1/models").status_code == 401


def test_model_lookup_by_any_id(client, auth_headers):
    resp = client.get("/v1/models/claude-sonnet-4-5-20250929", headers=auth_headers)
    assert resp.status_code == 200 and resp.get_json()["sap_model"] == SONNET
    assert client.get("/v1/models/nope", headers=auth_headers).status_code == 404


def test_models_pagination(client, auth_headers):
    body = client.get("/v1/models?limit=1", headers=auth_headers).get_json()
    assert body["has_more"] is True and len(body["data"]) == 1
    rest = client.get("/v1/models?after_id=" + body["last_id"], headers=auth_headers).get_json()
    assert [m["id"] for m in rest["data"]] == ["claude-sonnet-4-5"]


@pytest.mark.parametrize("line", fixture_requests("count_tokens.jsonl"),
                         ids=lambda r: str(r["body_bytes"]))
def test_count_tokens_answers_real_claude_code_bodies(client, upstream, auth_headers, line):
    resp = client.post("/v1/messages/count_tokens?beta=true", json=line["body"],
                       headers=auth_headers)
    assert resp.status_code == 200
    assert resp.get_json()["input_tokens"] >= 1
    assert len(upstream.calls) == 0


def test_count_tokens_unknown_model_still_counts(client, auth_headers):
    resp = client.post("/v1/messages/count_tokens", json=simple_body("who-knows"),
                       headers=auth_headers)
    assert resp.status_code == 200


@pytest.mark.parametrize("content", [
    [{"type": ["text"]}], [{"type": {"a": 1}, "text": "x"}], [{"type": None}], ["plain"], [[1]]])
def test_count_tokens_counts_odd_blocks_instead_of_failing(client, auth_headers, content):
    body = {"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": content}]}
    resp = client.post("/v1/messages/count_tokens", json=body, headers=auth_headers)
    assert resp.status_code == 200 and resp.get_json()["input_tokens"] >= 1


def test_count_tokens_scales_for_the_newer_tokenizer(tmp_path, upstream, auth_headers):
    from app import create_app, runtime
    from app.translate.token_count import NEW_TOKENIZER_SCALE, estimate_input_tokens
    from tests.http_fakes import make_settings

    app = create_app(make_settings(tmp_path, models={SONNET: ["d-s"],
                                                     "anthropic--claude-4.7-opus": ["d-o"]}))
    try:
        client = app.test_client()
        body = simple_body(messages=[{"role": "user", "content": "word " * 2000}])
        counts = {}
        for model in ("claude-sonnet-4-5", "claude-opus-4-7"):
            resp = client.post("/v1/messages/count_tokens", json={**body, "model": model},
                               headers=auth_headers)
            counts[model] = resp.get_json()["input_tokens"]
        assert counts["claude-sonnet-4-5"] == estimate_input_tokens(body)
        assert counts["claude-opus-4-7"] == estimate_input_tokens(body, scale=NEW_TOKENIZER_SCALE)
    finally:
        runtime.install(None)


@pytest.mark.parametrize("payload,content_type,fragment", [
    (b"{not json", "application/json", "not valid JSON"),
    (b"[1, 2]", "application/json", "JSON object"),
    (b"\xff\xfe\xfd", "application/json", "not valid JSON"),
    (b"{}", "text/plain", "Content-Type"),
    (b"[" * 100_000 + b"]" * 100_000, "application/json", "nested too deeply"),
    (json.dumps({"model": "x", "max_tokens": 5}).encode(), "application/json", "messages"),
    (json.dumps(simple_body(messages=[])).encode(), "application/json", "messages"),
    (json.dumps(simple_body(max_tokens="9")).encode(), "application/json", "max_tokens"),
    (json.dumps(simple_body(messages=[{"role": "bot", "content": "x"}])).encode(),
     "application/json", "messages.0"),
    (json.dumps(simple_body(messages=[{"role": ["user"], "content": "x"}])).encode(),
     "application/json", "messages.0"),
    (json.dumps(simple_body(messages=[{"role": "user", "content": [1]}])).encode(),
     "application/json", "messages.0.content"),
    (json.dumps(simple_body(stream="yes")).encode(), "application/json", "stream"),
    (json.dumps(simple_body(model=5)).encode(), "application/json", "model"),
])
def test_malformed_requests_get_clear_400s(client, auth_headers, payload, content_type,
                                           fragment):
    resp = client.post("/v1/messages", data=payload,
                       headers={**auth_headers, "Content-Type": content_type})
    assert resp.status_code == 400, resp.get_data()
    body = resp.get_json()
    assert body["type"] == "error"
    assert body["error"]["type"] == "invalid_request_error"
    assert fragment in body["error"]["message"]


def test_oversized_body_is_413_before_reading(app, auth_headers):
    from app import runtime

    limit = runtime.current().settings.max_body_bytes
    resp = app.test_client().post("/v1/messages", data=b"x" * (limit + 1),
                                  headers={**auth_headers, "Content-Type": "application/json"})
    assert resp.status_code == 413
    assert resp.get_json()["error"]["type"] == "request_too_large"


def test_wrong_method_is_json(client, auth_headers):
    resp = client.get("/v1/messages", headers=auth_headers)
    assert resp.status_code == 405
    assert resp.get_json()["type"] == "error"
