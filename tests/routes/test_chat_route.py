"""POST /v1/chat/completions through the Flask app, with SAP AI Core faked by `responses`:
the OpenAI body reaches Bedrock as a sanitized Anthropic body on the same path as
/v1/messages, answers come back in OpenAI's shapes, and every error is an OpenAI error."""

from __future__ import annotations

import json

import pytest
import responses

from app import create_app, runtime
from app.budget import record_usage
from tests.http_fakes import (CLIENT_KEY, SONNET, bedrock_message, bedrock_stream,
                              deployment_url, make_settings)

INVOKE = deployment_url("d-sonnet") + "/invoke"
STREAM = deployment_url("d-sonnet") + "/invoke-with-response-stream"
BEARER = {"Authorization": "Bearer " + CLIENT_KEY}
BASH = {"type": "function", "function": {
    "name": "Bash", "description": "Run a shell command",
    "parameters": {"type": "object", "properties": {"command": {"type": "string"}}}}}


def chat(model: str = "claude-sonnet-4-5", **extra) -> dict:
    return {"model": model, "messages": [{"role": "system", "content": "Be brief."},
                                         {"role": "user", "content": "say hello"}], **extra}


def sent(upstream, url) -> list[dict]:
    return [json.loads(c.request.body) for c in upstream.calls if c.request.url == url]


def assert_openai_error(resp, status: int, error_type: str, code=None) -> dict:
    assert resp.status_code == status, resp.get_data(as_text=True)
    body = resp.get_json()
    assert set(body) == {"error"}, body  # OpenAI shape: no Anthropic "type": "error" envelope
    assert body["error"]["type"] == error_type
    assert body["error"]["code"] == code
    assert body["error"]["message"]
    return body["error"]


def data_events(resp) -> list:
    text = resp.get_data(as_text=True)
    assert "event:" not in text
    lines = [line[6:] for line in text.split("\n\n") if line.startswith("data: ")]
    return [line if line == "[DONE]" else json.loads(line) for line in lines]


def test_non_streaming_is_the_default_and_goes_out_as_a_sanitized_anthropic_body(client,
                                                                                 upstream):
    upstream.add(responses.POST, INVOKE, json=bedrock_message("Hi there"))
    resp = client.post("/v1/chat/completions", json=chat(temperature=0.5, user="u-1"),
                       headers=BEARER)
    assert resp.status_code == 200
    assert resp.headers["x-gateway-model"] == SONNET
    assert resp.headers["request-id"].startswith("req_")
    body = resp.get_json()
    assert body["object"] == "chat.completion" and body["id"].startswith("chatcmpl-")
    assert body["model"] == "claude-sonnet-4-5"
    assert body["choices"] == [{"index": 0, "logprobs": None, "finish_reason": "stop",
                                "message": {"role": "assistant", "content": "Hi there"}}]
    assert body["usage"] == {"prompt_tokens": 42, "completion_tokens": 4, "total_tokens": 46,
                             "prompt_tokens_details": {"cached_tokens": 30}}
    (forwarded,) = sent(upstream, INVOKE)
    assert forwarded == {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 4096,
                         "system": [{"type": "text", "text": "Be brief."}],
                         "messages": [{"role": "user",
                                       "content": [{"type": "text", "text": "say hello"}]}],
                         "temperature": 0.5, "metadata": {"user_id": "u-1"}}
    assert not sent(upstream, STREAM)


def test_streaming_chunks_share_one_id_and_end_with_usage_and_one_done(client, upstream):
    upstream.add(responses.POST, STREAM, body=bedrock_stream(["Hel", "lo!"]),
                 content_type="text/event-stream")
    resp = client.post("/v1/chat/completions",
                       json=chat(stream=True, stream_options={"include_usage": True}),
                       headers=BEARER)
    assert resp.status_code == 200
    assert resp.mimetype == "text/event-stream"
    assert resp.headers["Cache-Control"] == "no-cache"
    assert resp.headers["X-Accel-Buffering"] == "no"
    events = data_events(resp)
    assert events[-1] == "[DONE]" and events.count("[DONE]") == 1
    chunks = events[:-1]
    assert {c["id"] for c in chunks} == {chunks[0]["id"]} and chunks[0]["id"].startswith("chatcmpl-")
    assert {c["model"] for c in chunks} == {"claude-sonnet-4-5"}
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    assert deltas == [{"role": "assistant", "content": ""}, {"content": "Hel"},
                      {"content": "lo!"}, {}]
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["prompt_tokens"] == 42
    (forwarded,) = sent(upstream, STREAM)
    assert "stream" not in forwarded and "model" not in forwarded


def test_tool_round_trip_maps_both_ways(client, upstream):
    upstream.add(responses.POST, INVOKE, json={
        **bedrock_message(stop_reason="tool_use"),
        "content": [{"type": "text", "text": ""},
                    {"type": "tool_use", "id": "toolu_1", "name": "Bash",
                     "input": {"command": "ls"}}]})
    upstream.add(responses.POST, INVOKE, json=bedrock_message("Tool said: a.py"))
    messages = [{"role": "user", "content": "run ls"}]
    first = client.post("/v1/chat/completions", headers=BEARER, json={
        "model": "claude-sonnet-4-5", "messages": messages, "tools": [BASH],
        "tool_choice": "required", "parallel_tool_calls": False}).get_json()
    choice = first["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None
    (tool_call,) = choice["message"]["tool_calls"]
    assert tool_call == {"id": "toolu_1", "type": "function",
                         "function": {"name": "Bash", "arguments": '{"command":"ls"}'}}
    messages += [choice["message"],
                 {"role": "tool", "tool_call_id": "toolu_1", "content": "a.py"}]
    second = client.post("/v1/chat/completions", headers=BEARER, json={
        "model": "claude-sonnet-4-5", "messages": messages, "tools": [BASH]}).get_json()
    assert second["choices"][0]["message"]["content"] == "Tool said: a.py"
    asked, answered = sent(upstream, INVOKE)
    assert asked["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}
    assert asked["tools"] == [{"name": "Bash", "description": "Run a shell command",
                               "input_schema": BASH["function"]["parameters"]}]
    assert answered["messages"][1:] == [
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "Bash",
                                           "input": {"command": "ls"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1",
                                      "content": "a.py"}]}]


def test_stream_cut_before_message_stop_ends_with_an_openai_error_then_done(client, upstream):
    partial = bedrock_stream(["Hel"]).split("\n\n")[:3]  # message_start, block start, one delta
    upstream.add(responses.POST, STREAM, body="\n\n".join(partial) + "\n\n",
                 content_type="text/event-stream")
    resp = client.post("/v1/chat/completions", json=chat(stream=True), headers=BEARER)
    assert resp.status_code == 200  # committed before the failure
    events = data_events(resp)
    assert events[-1] == "[DONE]"
    assert events[-2] == {"error": {"message": "Upstream stream ended early",
                                    "type": "service_unavailable_error", "param": None,
                                    "code": None}}
    assert all(c["choices"][0]["finish_reason"] is None for c in events[:-2])


def test_missing_or_wrong_key_is_an_openai_401(client, upstream):
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        resp = client.post("/v1/chat/completions", json=chat(), headers=headers)
        assert_openai_error(resp, 401, "invalid_request_error", "invalid_api_key")
    assert client.post("/v1/chat/completions", json=chat(),
                       headers={"x-api-key": "nope"}).status_code == 401


@pytest.mark.parametrize("body, fragment", [
    (chat(n=2), "n: only n=1"),
    ({"messages": [{"role": "user", "content": "x"}]}, "model: field required"),
    ({**chat(), "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}]}]},
     "image URLs are not supported"),
])
def test_bad_requests_are_openai_400s_and_never_forwarded(client, upstream, body, fragment):
    resp = client.post("/v1/chat/completions", json=body, headers=BEARER)
    error = assert_openai_error(resp, 400, "invalid_request_error")
    assert fragment in error["message"]
    assert not sent(upstream, INVOKE)


def test_body_that_is_not_json_is_an_openai_400(client):
    resp = client.post("/v1/chat/completions", data=b"{", headers={
        **BEARER, "Content-Type": "application/json"})
    assert "not valid JSON" in assert_openai_error(resp, 400, "invalid_request_error")["message"]


def test_unknown_model_is_an_openai_404(client):
    resp = client.post("/v1/chat/completions", json=chat("gpt-4o"), headers=BEARER)
    error = assert_openai_error(resp, 404, "invalid_request_error", "model_not_found")
    assert "available" in error["message"]


def test_upstream_throttling_is_an_openai_429_with_retry_after(client, upstream):
    upstream.add(responses.POST, INVOKE, status=429, headers={"Retry-After": "7"},
                 json={"message": "Too many tokens, please wait before trying again."})
    resp = client.post("/v1/chat/completions", json=chat(), headers=BEARER)
    assert_openai_error(resp, 429, "rate_limit_error", "rate_limit_exceeded")
    assert resp.headers["retry-after"] == "7"


def test_upstream_overload_is_an_openai_503(client, upstream):
    upstream.add(responses.POST, INVOKE, status=503, json={"message": "Service unavailable"})
    resp = client.post("/v1/chat/completions", json=chat(), headers=BEARER)
    assert_openai_error(resp, 503, "service_unavailable_error")


def test_self_healing_applies_to_chat_too(client, upstream):
    upstream.add(responses.POST, INVOKE, status=400,
                 json={"message": "metadata: Extra inputs are not permitted"})
    upstream.add(responses.POST, INVOKE, json=bedrock_message())
    resp = client.post("/v1/chat/completions", json=chat(user="u-1"), headers=BEARER)
    assert resp.status_code == 200
    assert resp.headers["x-gateway-repairs"] == "healed:metadata"
    first, second = sent(upstream, INVOKE)
    assert "metadata" in first and "metadata" not in second


@pytest.fixture
def budget_client(tmp_path, upstream):
    settings = make_settings(tmp_path, budgets={"team-a": 1000},
                             budget_store=str(tmp_path / "budgets.sqlite3"))
    app = create_app(settings)
    yield app.test_client(), settings
    runtime.install(None)


def test_used_up_budget_is_an_openai_insufficient_quota(budget_client, upstream):
    client, settings = budget_client
    record_usage("team-a", {"input_tokens": 1000}, settings)
    resp = client.post("/v1/chat/completions", json=chat(), headers=BEARER)
    assert_openai_error(resp, 429, "insufficient_quota", "insufficient_quota")
    assert resp.headers["x-should-retry"] == "false"
    assert not sent(upstream, INVOKE)
