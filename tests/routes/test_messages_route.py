"""POST /v1/messages through the Flask app, with SAP AI Core faked by `responses`."""

from __future__ import annotations

import json
import logging
import re

import responses

from tests.http_fakes import (CLIENT_KEY, SONNET, bedrock_message, bedrock_stream,
                              deployment_url, simple_body, token_calls)

INVOKE = deployment_url("d-sonnet") + "/invoke"
STREAM = deployment_url("d-sonnet") + "/invoke-with-response-stream"


def sent_json(call) -> dict:
    return json.loads(call.request.body)


def upstream_calls(upstream, url):
    return [c for c in upstream.calls if c.request.url == url]


def test_non_streaming_message_is_forwarded_sanitized(client, upstream, auth_headers):
    upstream.add(responses.POST, INVOKE, json=bedrock_message("Hi there"))
    resp = client.post("/v1/messages?beta=true", json=simple_body(),
                       headers={**auth_headers, "anthropic-beta":
                                "claude-code-20250219,interleaved-thinking-2025-05-14"})
    assert resp.status_code == 200
    body = resp.get_json()
    assert body["model"] == "claude-sonnet-4-5-20250929"
    assert body["content"] == [{"type": "text", "text": "Hi there"}]
    assert body["usage"]["cache_read_input_tokens"] == 30
    assert resp.headers["request-id"].startswith("req_")
    assert resp.headers["x-gateway-model"] == SONNET
    (call,) = upstream_calls(upstream, INVOKE)
    sent = sent_json(call)
    assert "model" not in sent and "stream" not in sent
    assert sent["anthropic_version"] == "bedrock-2023-05-31"
    assert sent["anthropic_beta"] == ["interleaved-thinking-2025-05-14"]
    headers = call.request.headers
    assert headers["Authorization"] == "Bearer tok-1"
    assert headers["AI-Resource-Group"] == "rg-test"
    for forbidden in ("x-api-key", "anthropic-beta", "anthropic-version"):
        assert forbidden not in headers


def test_streaming_message_has_event_names_and_sse_headers(client, upstream, auth_headers):
    upstream.add(responses.POST, STREAM, body=bedrock_stream(["Hel", "lo"]),
                 content_type="text/event-stream")
    resp = client.post("/v1/messages", json=simple_body(stream=True), headers=auth_headers)
    assert resp.status_code == 200
    assert resp.mimetype == "text/event-stream"
    assert resp.headers["Cache-Control"] == "no-cache"
    assert resp.headers["X-Accel-Buffering"] == "no"
    text = resp.get_data(as_text=True)
    names = [line[7:] for line in text.splitlines() if line.startswith("event: ")]
    assert names == ["message_start", "content_block_start", "content_block_delta",
                     "content_block_delta", "content_block_stop", "message_delta",
                     "message_stop"]
    assert "amazon-bedrock-invocationMetrics" not in text
    data = [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: ")]
    assert data[0]["message"]["model"] == "claude-sonnet-4-5-20250929"
    assert data[-2]["usage"]["input_tokens"] == 12
    assert data[-2]["usage"]["cache_read_input_tokens"] == 30


def test_both_auth_headers_work_and_others_fail(client, upstream):
    upstream.add(responses.POST, INVOKE, json=bedrock_message())
    ok_bearer = client.post("/v1/messages", json=simple_body(),
                            headers={"Authorization": "Bearer " + CLIENT_KEY})
    assert ok_bearer.status_code == 200
    for headers in ({}, {"x-api-key": "wrong"}, {"Authorization": "Bearer " + CLIENT_KEY[:-1]},
                    {"Authorization": "Basic " + CLIENT_KEY}, {"x-api-key": CLIENT_KEY + "x"}):
        resp = client.post("/v1/messages", json=simple_body(), headers=headers)
        assert resp.status_code == 401
        assert resp.get_json()["error"]["type"] == "authentication_error"
        assert resp.get_json()["type"] == "error"


def test_token_is_cached_across_requests(client, upstream, auth_headers):
    upstream.add(responses.POST, INVOKE, json=bedrock_message())
    for _ in range(3):
        assert client.post("/v1/messages", json=simple_body(),
                           headers=auth_headers).status_code == 200
    assert token_calls(upstream) == 1


def test_upstream_401_refreshes_token_once(client, upstream, auth_headers):
    upstream.add(responses.POST, INVOKE, status=401, json={"message": "Jwt is expired"})
    upstream.add(responses.POST, INVOKE, json=bedrock_message())
    resp = client.post("/v1/messages", json=simple_body(), headers=auth_headers)
    assert resp.status_code == 200
    assert token_calls(upstream) == 2
    calls = upstream_calls(upstream, INVOKE)
    assert [c.request.headers["Authorization"] for c in calls] == ["Bearer tok-1", "Bearer tok-2"]


def test_upstream_401_twice_is_a_server_error_not_a_client_401(client, upstream, auth_headers):
    upstream.add(responses.POST, INVOKE, status=401, json={"message": "Jwt is expired"})
    upstream.add(responses.POST, INVOKE, status=401, json={"message": "Jwt is expired"})
    resp = client.post("/v1/messages", json=simple_body(), headers=auth_headers)
    assert resp.status_code == 500
    assert resp.get_json()["error"]["type"] == "api_error"


def test_upstream_429_becomes_rate_limit_error_with_retry_after(client, upstream, auth_headers):
    upstream.add(responses.POST, INVOKE, status=429, headers={"Retry-After": "7"},
                 json={"message": "Too many tokens, please wait before trying again."})
    resp = client.post("/v1/messages", json=simple_body(), headers=auth_headers)
    assert resp.status_code == 429
    assert resp.headers["retry-after"] == "7"
    error = resp.get_json()["error"]
    assert error["type"] == "rate_limit_error"
    assert "Too many tokens" in error["message"]


def test_retry_after_is_capped_at_60(client, upstream, auth_headers):
    upstream.add(responses.POST, INVOKE, status=429, headers={"Retry-After": "3600"},
                 json={"message": "Too many requests"})
    resp = client.post("/v1/messages", json=simple_body(), headers=auth_headers)
    assert resp.headers["retry-after"] == "60"


def test_prompt_too_long_says_by_how_much_as_anthropic_does(client, upstream, auth_headers):
    upstream.add(responses.POST, INVOKE, status=400,
                 json={"message": "Input is too long for requested model."})
    body = simple_body(messages=[{"role": "user", "content": "word " * 40000}])
    resp = client.post("/v1/messages", json=body, headers=auth_headers)
    assert resp.status_code == 400
    message = resp.get_json()["error"]["message"]
    assert message.startswith("capability_rejected: prompt_too_long; prompt is too long: ")
    assert re.search(r"prompt is too long: \d+ tokens > 200000 maximum\. Upstream said: Input "
                     r"is too long for requested model\.$", message), message


def test_a_null_cache_control_is_accepted_and_not_forwarded(client, upstream, auth_headers):
    upstream.add(responses.POST, INVOKE, json=bedrock_message())
    body = simple_body(messages=[{"role": "user", "content": [
        {"type": "text", "text": "hi", "cache_control": None}]}])
    assert client.post("/v1/messages", json=body, headers=auth_headers).status_code == 200
    (call,) = upstream_calls(upstream, INVOKE)
    assert "cache_control" not in sent_json(call)["messages"][0]["content"][0]


def test_upstream_503_becomes_529_overloaded(client, upstream, auth_headers):
    upstream.add(responses.POST, INVOKE, status=503, json={"message": "ServiceUnavailable"})
    resp = client.post("/v1/messages", json=simple_body(), headers=auth_headers)
    assert resp.status_code == 529
    assert resp.get_json()["error"]["type"] == "overloaded_error"
    assert "retry-after" in resp.headers


def test_upstream_400_message_kept_verbatim_without_urls(client, upstream, auth_headers):
    message = ("messages.1.content.0: bad thing at "
               + deployment_url("d-sonnet") + " please fix")
    upstream.add(responses.POST, INVOKE, status=400, json={"message": message})
    resp = client.post("/v1/messages", json=simple_body(), headers=auth_headers)
    assert resp.status_code == 400
    error_text = resp.get_json()["error"]["message"]
    assert "messages.1.content.0: bad thing at" in error_text
    assert "example.test" not in error_text and "d-sonnet" not in error_text


def test_self_healing_removes_named_field_retries_once_and_remembers(client, upstream,
                                                                     auth_headers):
    upstream.add(responses.POST, INVOKE, status=400,
                 json={"message": "metadata: Extra inputs are not permitted"})
    upstream.add(responses.POST, INVOKE, json=bedrock_message())
    upstream.add(responses.POST, INVOKE, json=bedrock_message())
    body = simple_body(metadata={"user_id": "u1"})
    first = client.post("/v1/messages", json=body, headers=auth_headers)
    assert first.status_code == 200
    assert "healed:metadata" in first.headers["x-gateway-repairs"]
    second = client.post("/v1/messages", json=body, headers=auth_headers)
    assert second.status_code == 200
    sent = [sent_json(c) for c in upstream_calls(upstream, INVOKE)]
    assert "metadata" in sent[0]
    assert "metadata" not in sent[1] and "metadata" not in sent[2]
    assert len(sent) == 3  # one retry for the first request, none for the second


def test_self_healing_does_not_loop(client, upstream, auth_headers):
    for _ in range(3):
        upstream.add(responses.POST, INVOKE, status=400,
                     json={"message": "metadata: Extra inputs are not permitted"})
    resp = client.post("/v1/messages", json=simple_body(metadata={"user_id": "u"}),
                       headers=auth_headers)
    assert resp.status_code == 400
    assert len(upstream_calls(upstream, INVOKE)) == 2


def test_claude_code_model_ids_map_by_family(client, upstream, auth_headers):
    haiku_invoke = deployment_url("d-haiku") + "/invoke"
    upstream.add(responses.POST, haiku_invoke, json=bedrock_message())
    upstream.add(responses.POST, INVOKE, json=bedrock_message())
    for model in ("claude-haiku-4-5-20251001", "claude-sonnet-4-5[1m]"):
        resp = client.post("/v1/messages", json=simple_body(model), headers=auth_headers)
        assert resp.status_code == 200, resp.get_data()
        assert resp.get_json()["model"] == model
    assert len(upstream_calls(upstream, haiku_invoke)) == 1
    assert len(upstream_calls(upstream, INVOKE)) == 1


def test_unknown_model_is_404_listing_available(client, auth_headers):
    resp = client.post("/v1/messages", json=simple_body("gpt-9"), headers=auth_headers)
    assert resp.status_code == 404
    error = resp.get_json()["error"]
    assert error["type"] == "not_found_error"
    assert SONNET in error["message"]


def test_opus_request_never_goes_to_another_family(client, auth_headers):
    resp = client.post("/v1/messages", json=simple_body("claude-opus-5-5"), headers=auth_headers)
    assert resp.status_code == 404


def test_web_search_helper_request_is_answered_not_rejected(client, upstream, auth_headers):
    upstream.add(responses.POST, INVOKE, json=bedrock_message("I cannot search the web."))
    body = simple_body(tools=[{"type": "web_search_20250305", "name": "web_search",
                               "max_uses": 8}], tool_choice={"type": "auto"})
    resp = client.post("/v1/messages", json=body, headers=auth_headers)
    assert resp.status_code == 200
    sent = sent_json(upstream_calls(upstream, INVOKE)[0])
    assert "tools" not in sent and "tool_choice" not in sent


def test_sanitizer_rejection_is_a_clear_400(client, auth_headers):
    body = simple_body(messages=[{"role": "user", "content": [
        {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}}]}])
    resp = client.post("/v1/messages", json=body, headers=auth_headers)
    assert resp.status_code == 400
    assert resp.get_json()["error"]["type"] == "invalid_request_error"


def test_upstream_unreachable_is_502(client, upstream, auth_headers):
    import requests

    upstream.add(responses.POST, INVOKE, body=requests.ConnectionError("refused"))
    resp = client.post("/v1/messages", json=simple_body(), headers=auth_headers)
    assert resp.status_code == 502
    assert resp.get_json()["error"]["type"] == "api_error"


def test_identity_service_down_is_a_clear_gateway_error(app, auth_headers):
    client = app.test_client()
    with responses.RequestsMock() as mock:
        from tests.http_fakes import TOKEN_URL

        mock.add(responses.POST, TOKEN_URL, status=503, body="down")
        resp = client.post("/v1/messages", json=simple_body(), headers=auth_headers)
    assert resp.status_code == 502
    assert "authentication" in resp.get_json()["error"]["message"]


def test_requests_are_spread_over_a_models_deployments(tmp_path, upstream, auth_headers):
    from app import create_app, runtime
    from tests.http_fakes import make_settings

    app = create_app(make_settings(tmp_path, models={SONNET: ["d-a", "d-b"]}))
    try:
        client = app.test_client()
        for dep in ("d-a", "d-b"):
            upstream.add(responses.POST, deployment_url(dep) + "/invoke", json=bedrock_message())
        for _ in range(4):
            assert client.post("/v1/messages", json=simple_body(),
                               headers=auth_headers).status_code == 200
        for dep in ("d-a", "d-b"):
            assert len(upstream_calls(upstream, deployment_url(dep) + "/invoke")) == 2
    finally:
        runtime.install(None)


def test_a_stream_is_logged_once_the_server_closes_it(client, upstream, auth_headers, caplog):
    """The access line (and usage, metrics) is written when the server closes the response,
    after its last byte, not while the client still waits for that byte."""
    upstream.add(responses.POST, STREAM, body=bedrock_stream())
    with caplog.at_level(logging.INFO, logger="gateway.access"):
        resp = client.post("/v1/messages", json=simple_body(stream=True), headers=auth_headers,
                           buffered=False)
        assert b"event: message_stop" in resp.get_data()
        assert not [r for r in caplog.records if r.name == "gateway.access"]
        resp.close()
    (line,) = [r.getMessage() for r in caplog.records if r.name == "gateway.access"]
    assert " 200 " in line and "in=12 out=5" in line and "error=-" in line
