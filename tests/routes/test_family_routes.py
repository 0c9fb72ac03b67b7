"""GPT (Azure OpenAI) and Gemini (Vertex) deployments behind every client route, with SAP AI
Core faked by `responses`: /v1/messages and /v1/responses through the Anthropic pivot,
/v1/chat/completions as a pass-through for GPT and translated for Gemini, /v1/embeddings;
what reaches the upstream, what the client gets back, and errors in the client's dialect."""

from __future__ import annotations

import json

import pytest
import responses

from app import create_app, runtime
from tests.http_fakes import CLIENT_KEY, SONNET, bedrock_stream, deployment_url, make_settings

GPT, GEMINI, EMBED = "gpt-5.4", "gemini-2.5-pro", "text-embedding-3-small"
CHAT_URL = deployment_url("d-gpt") + "/chat/completions?api-version=2025-04-01-preview"
CHAT_URL_2 = deployment_url("d-gpt2") + "/chat/completions?api-version=2025-04-01-preview"
GEN_URL = deployment_url("d-gem") + f"/models/{GEMINI}:generateContent"
GEN_STREAM_URL = deployment_url("d-gem") + f"/models/{GEMINI}:streamGenerateContent?alt=sse"
EMBED_URL = deployment_url("d-emb") + "/embeddings?api-version=2025-04-01-preview"
BEDROCK_STREAM = deployment_url("d-sonnet") + "/invoke-with-response-stream"
BEARER = {"Authorization": "Bearer " + CLIENT_KEY}
ANTHROPIC = {"x-api-key": CLIENT_KEY, "anthropic-version": "2023-06-01"}
BASH = {"name": "Bash", "description": "Run a shell command",
        "input_schema": {"$schema": "https://json-schema.org/draft/2020-12/schema",
                         "type": "object", "additionalProperties": False,
                         "properties": {"command": {"type": "string"}},
                         "required": ["command"]}}


@pytest.fixture
def app(tmp_path, upstream):
    settings = make_settings(tmp_path, models={SONNET: ["d-sonnet"], GPT: ["d-gpt", "d-gpt2"],
                                               GEMINI: ["d-gem"], EMBED: ["d-emb"]})
    application = create_app(settings)
    yield application
    runtime.install(None)


def sent(upstream, url) -> list[dict]:
    return [json.loads(c.request.body) for c in upstream.calls if c.request.url == url]


def sse(*payloads) -> str:
    return "".join("data: " + (p if isinstance(p, str) else json.dumps(p)) + "\n\n"
                   for p in payloads)


def chunk(delta=None, finish=None, usage=None, choices=True) -> dict:
    out = {"id": "chatcmpl-az1", "object": "chat.completion.chunk", "created": 1767225600,
           "model": GPT, "choices": [], "usage": usage}
    if choices:
        out["choices"] = [{"index": 0, "delta": delta or {}, "finish_reason": finish}]
    return out


FILTER_ONLY = {"id": "", "object": "", "created": 0, "model": "", "choices": [],
               "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": {}}]}
AZURE_TOOL_STREAM = sse(
    FILTER_ONLY,
    chunk({"role": "assistant", "content": ""}),
    chunk({"content": "Running it."}),
    chunk({"tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                           "function": {"name": "Bash", "arguments": ""}}]}),
    chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"command"'}}]}),
    chunk({"tool_calls": [{"index": 0, "function": {"arguments": ': "ls"}'}}]}),
    chunk(finish="tool_calls"),
    chunk(choices=False, usage={"prompt_tokens": 900, "completion_tokens": 12,
                                "total_tokens": 912,
                                "prompt_tokens_details": {"cached_tokens": 800}}),
    "[DONE]")
COMPLETION = {"id": "chatcmpl-az2", "object": "chat.completion", "created": 1767225600,
              "model": GPT, "choices": [{"index": 0, "finish_reason": "stop",
                                         "message": {"role": "assistant", "content": "Hi!"},
                                         "content_filter_results": {}}],
              "usage": {"prompt_tokens": 8, "completion_tokens": 3, "total_tokens": 11,
                        "prompt_tokens_details": {"cached_tokens": 0}},
              "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": {}}]}
GEMINI_ANSWER = {"candidates": [{"content": {"role": "model", "parts": [{"text": "Hi!"}]},
                                 "finishReason": "STOP", "index": 0}],
                 "usageMetadata": {"promptTokenCount": 20, "candidatesTokenCount": 3,
                                   "thoughtsTokenCount": 5, "totalTokenCount": 28},
                 "modelVersion": GEMINI, "responseId": "r1"}


def anthropic_events(resp) -> list[tuple[str, dict]]:
    out = []
    for frame in resp.get_data(as_text=True).strip().split("\n\n"):
        lines = frame.split("\n")
        assert lines[0].startswith("event: "), frame
        out.append((lines[0][7:], json.loads(lines[1][6:])))
    return out


def data_events(resp) -> list:
    text = resp.get_data(as_text=True)
    lines = [f[6:] for f in text.split("\n\n") if f.startswith("data: ")]
    return [line if line == "[DONE]" else json.loads(line) for line in lines]


# ----------------------------------------------------------------------- /v1/messages


def test_messages_on_gpt_streams_the_anthropic_grammar_with_real_usage(client, upstream):
    upstream.add(responses.POST, CHAT_URL, body=AZURE_TOOL_STREAM,
                 content_type="text/event-stream")
    body = {"model": GPT, "max_tokens": 2000, "stream": True, "tools": [BASH],
            "system": [{"type": "text", "text": "Be brief.",
                        "cache_control": {"type": "ephemeral"}}],
            "thinking": {"type": "adaptive"},
            "messages": [{"role": "user", "content": "run ls"},
                         {"role": "system", "content": "mid-conversation note"}]}
    resp = client.post("/v1/messages?beta=true", json=body, headers=ANTHROPIC)
    assert resp.status_code == 200 and resp.mimetype == "text/event-stream"
    assert resp.headers["x-gateway-model"] == GPT
    events = anthropic_events(resp)
    names = [n for n, _ in events]
    assert names[0] == "message_start" and names[-2:] == ["message_delta", "message_stop"]
    assert events[0][1]["message"]["model"] == GPT
    assert events[0][1]["message"]["usage"]["input_tokens"] > 0  # an estimate, not 0
    blocks = [d["content_block"] for n, d in events if n == "content_block_start"]
    assert [b["type"] for b in blocks] == ["text", "tool_use"]
    assert blocks[1]["name"] == "Bash" and blocks[1]["id"].startswith("toolu_")
    partial = "".join(d["delta"]["partial_json"] for n, d in events
                      if n == "content_block_delta" and d["delta"]["type"] == "input_json_delta")
    assert json.loads(partial) == {"command": "ls"}
    final = events[-2][1]
    assert final["delta"]["stop_reason"] == "tool_use"
    assert final["usage"]["input_tokens"] == 100
    assert final["usage"]["cache_read_input_tokens"] == 800
    assert final["usage"]["output_tokens"] == 12
    (forwarded,) = sent(upstream, CHAT_URL)
    assert "model" not in forwarded and forwarded["stream"] is True
    assert forwarded["stream_options"] == {"include_usage": True}
    assert forwarded["max_completion_tokens"] == 2000 and "max_tokens" not in forwarded
    assert forwarded["reasoning_effort"] in ("low", "medium", "high")
    assert forwarded["messages"][0] == {"role": "system", "content": "Be brief."}
    assert "mid-conversation note" in json.dumps(forwarded["messages"])
    params = forwarded["tools"][0]["function"]["parameters"]
    assert "$schema" not in params and params["properties"] == {"command": {"type": "string"}}


def test_messages_on_gpt_tool_result_round_trip_gives_azure_its_own_call_ids(client, upstream):
    upstream.add(responses.POST, CHAT_URL, json=COMPLETION)
    body = {"model": GPT, "max_tokens": 100, "tools": [BASH], "messages": [
        {"role": "user", "content": "run ls"},
        {"role": "assistant", "content": [
            {"type": "text", "text": "Running it."},
            {"type": "tool_use", "id": "toolu_call_1", "name": "Bash",
             "input": {"command": "ls"}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_call_1", "content": "a.py"}]}]}
    resp = client.post("/v1/messages", json=body, headers=ANTHROPIC)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    message = resp.get_json()
    assert message["type"] == "message" and message["model"] == GPT
    assert message["content"] == [{"type": "text", "text": "Hi!"}]
    assert message["usage"]["input_tokens"] == 8 and message["usage"]["output_tokens"] == 3
    (forwarded,) = sent(upstream, CHAT_URL)
    assistant, tool = forwarded["messages"][1], forwarded["messages"][2]
    assert assistant["tool_calls"][0]["id"] == "call_1"
    assert tool == {"role": "tool", "tool_call_id": "call_1", "content": "a.py"}


def test_messages_on_gemini_streams_and_cleans_schemas(client, upstream):
    chunks = sse(
        {"candidates": [{"content": {"role": "model", "parts": [{"text": "Hi"}]}, "index": 0}],
         "usageMetadata": {"promptTokenCount": 20, "totalTokenCount": 20},
         "modelVersion": GEMINI},
        {"candidates": [{"content": {"role": "model", "parts": [
            {"functionCall": {"name": "Bash", "args": {"command": "ls"}},
             "thoughtSignature": "c2lnbmF0dXJl"}]}, "finishReason": "STOP", "index": 0}],
         "usageMetadata": {"promptTokenCount": 20, "candidatesTokenCount": 7,
                           "totalTokenCount": 27}, "modelVersion": GEMINI})
    upstream.add(responses.POST, GEN_STREAM_URL, body=chunks, content_type="text/event-stream")
    body = {"model": GEMINI, "max_tokens": 500, "stream": True, "tools": [BASH],
            "messages": [{"role": "user", "content": "run ls"}]}
    resp = client.post("/v1/messages", json=body, headers=ANTHROPIC)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    events = anthropic_events(resp)
    tool = next(d["content_block"] for n, d in events
                if n == "content_block_start" and d["content_block"]["type"] == "tool_use")
    assert tool["name"] == "Bash" and tool["id"].startswith("toolu_")
    assert events[-2][1]["delta"]["stop_reason"] == "tool_use"
    assert events[-2][1]["usage"]["output_tokens"] == 7
    (forwarded,) = sent(upstream, GEN_STREAM_URL)
    declaration = forwarded["tools"][0]["functionDeclarations"][0]
    assert "$schema" not in json.dumps(declaration)
    assert "additionalProperties" not in json.dumps(declaration)
    assert forwarded["contents"] == [{"role": "user", "parts": [{"text": "run ls"}]}]

    # the next turn sends the call back: the thought signature returns beside it, no id
    upstream.add(responses.POST, GEN_URL, json=GEMINI_ANSWER)
    follow = {"model": GEMINI, "max_tokens": 500, "tools": [BASH], "messages": [
        {"role": "user", "content": "run ls"},
        {"role": "assistant", "content": [tool | {"input": {"command": "ls"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": tool["id"],
                                      "content": "a.py"}]}]}
    resp = client.post("/v1/messages", json=follow, headers=ANTHROPIC)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert resp.get_json()["content"] == [{"type": "text", "text": "Hi!"}]
    (second,) = sent(upstream, GEN_URL)
    call_part = second["contents"][1]["parts"][0]
    assert call_part["functionCall"]["name"] == "Bash"
    assert call_part["thoughtSignature"] == "c2lnbmF0dXJl"
    response_part = second["contents"][2]["parts"][0]["functionResponse"]
    assert response_part["name"] == "Bash" and "id" not in response_part


def test_gpt_5xx_fails_over_to_the_next_deployment(client, upstream):
    upstream.add(responses.POST, CHAT_URL, status=500, json={"error": {"message": "boom"}})
    upstream.add(responses.POST, CHAT_URL_2, json=COMPLETION)
    body = {"model": GPT, "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}
    for _ in range(3):  # whichever deployment the round-robin starts with
        resp = client.post("/v1/messages", json=body, headers=ANTHROPIC)
        assert resp.status_code == 200 and resp.get_json()["content"][0]["text"] == "Hi!"
    assert len(sent(upstream, CHAT_URL)) == 1  # then cooling down, skipped


def test_gpt_validation_error_keeps_azures_words_in_anthropic_shape(client, upstream):
    error = {"message": "Unsupported value: 'temperature' does not support 0.2 with this model.",
             "type": "invalid_request_error", "param": "temperature", "code": "unsupported_value"}
    upstream.add(responses.POST, CHAT_URL, status=400, json={"error": error})
    upstream.add(responses.POST, CHAT_URL_2, status=400, json={"error": error})
    body = {"model": GPT, "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}
    resp = client.post("/v1/messages", json=body, headers=ANTHROPIC)
    assert resp.status_code == 400
    assert resp.get_json()["error"] == {"type": "invalid_request_error",
                                        "message": error["message"]}
    assert len(upstream.calls) == 2  # token + one call: a 400 is not failed over
    assert "d-gpt" not in resp.get_data(as_text=True)


def test_gpt_throttling_fails_over_then_is_a_429_with_retry_after(client, upstream):
    for url in (CHAT_URL, CHAT_URL_2):
        upstream.add(responses.POST, url, status=429, headers={"Retry-After": "9"},
                     json={"error": {"message": "Rate limit reached", "code": "429"}})
    resp = client.post("/v1/chat/completions", headers=BEARER, json={
        "model": GPT, "messages": [{"role": "user", "content": "hi"}]})
    assert resp.status_code == 429
    assert resp.get_json()["error"]["type"] == "rate_limit_error"
    assert 1 <= int(resp.headers["retry-after"]) <= 9
    assert len(sent(upstream, CHAT_URL)) == 1 and len(sent(upstream, CHAT_URL_2)) == 1


# ---------------------------------------------------------------- /v1/chat/completions


def test_chat_on_gpt_passes_through_with_one_done_and_no_unasked_usage(client, upstream):
    upstream.add(responses.POST, CHAT_URL, body=AZURE_TOOL_STREAM,
                 content_type="text/event-stream")
    resp = client.post("/v1/chat/completions", headers=BEARER, json={
        "model": GPT, "stream": True, "max_tokens": 50, "temperature": 0.3, "seed": 7,
        "response_format": {"type": "json_object"},
        "messages": [{"role": "user", "content": "run ls"}]})
    assert resp.status_code == 200
    events = data_events(resp)
    assert events[-1] == "[DONE]" and events.count("[DONE]") == 1
    chunks = events[:-1]
    assert all(c["model"] == GPT for c in chunks)
    assert all(c["choices"] for c in chunks)  # neither the filter-only nor the usage chunk
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"
    (forwarded,) = sent(upstream, CHAT_URL)
    assert forwarded["max_completion_tokens"] == 50 and "max_tokens" not in forwarded
    assert "temperature" not in forwarded  # gpt-5.4 is a reasoning model
    assert forwarded["seed"] == 7 and forwarded["response_format"] == {"type": "json_object"}
    assert forwarded["stream_options"] == {"include_usage": True}


def test_chat_on_gpt_keeps_usage_when_asked_and_records_it(client, upstream, tmp_path):
    upstream.add(responses.POST, CHAT_URL, body=AZURE_TOOL_STREAM,
                 content_type="text/event-stream")
    resp = client.post("/v1/chat/completions", headers=BEARER, json={
        "model": GPT, "stream": True, "stream_options": {"include_usage": True},
        "messages": [{"role": "user", "content": "run ls"}]})
    chunks = data_events(resp)[:-1]
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["prompt_tokens"] == 900
    usage_files = list(tmp_path.glob("usage.log*"))
    line = json.loads(usage_files[0].read_text().splitlines()[-1])
    assert (line["input_tokens"], line["cache_read_input_tokens"], line["output_tokens"]) == \
        (100, 800, 12)


def test_chat_on_gpt_non_streaming_answer_has_the_client_model(client, upstream):
    upstream.add(responses.POST, CHAT_URL, json=COMPLETION)
    resp = client.post("/v1/chat/completions", headers=BEARER, json={
        "model": GPT, "messages": [{"role": "user", "content": "hi"}]})
    assert resp.status_code == 200
    body = resp.get_json()
    assert body["model"] == GPT and body["choices"][0]["message"]["content"] == "Hi!"
    assert "prompt_filter_results" not in body


def test_chat_on_gemini_is_translated_both_ways(client, upstream):
    upstream.add(responses.POST, GEN_URL, json=GEMINI_ANSWER)
    resp = client.post("/v1/chat/completions", headers=BEARER, json={
        "model": GEMINI, "messages": [{"role": "system", "content": "Be brief."},
                                      {"role": "user", "content": "hi"}]})
    assert resp.status_code == 200, resp.get_data(as_text=True)
    body = resp.get_json()
    assert body["object"] == "chat.completion" and body["model"] == GEMINI
    assert body["choices"][0]["message"]["content"] == "Hi!"
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["usage"]["completion_tokens"] == 8  # candidates + thoughts
    (forwarded,) = sent(upstream, GEN_URL)
    assert forwarded["systemInstruction"] == {"parts": [{"text": "Be brief."}]}


def test_chat_on_an_embeddings_model_is_a_400(client):
    resp = client.post("/v1/chat/completions", headers=BEARER, json={
        "model": EMBED, "messages": [{"role": "user", "content": "hi"}]})
    assert resp.status_code == 400 and "not a chat model" in resp.get_json()["error"]["message"]


# ----------------------------------------------------------------------- /v1/embeddings


def test_embeddings_forward_input_and_options_and_keep_usage(client, upstream):
    answer = {"object": "list", "model": EMBED, "usage": {"prompt_tokens": 4, "total_tokens": 4},
              "data": [{"object": "embedding", "index": 0, "embedding": [0.1, -0.2]},
                       {"object": "embedding", "index": 1, "embedding": [0.3, 0.4]}]}
    upstream.add(responses.POST, EMBED_URL, json=answer)
    resp = client.post("/v1/embeddings", headers=BEARER, json={
        "model": EMBED, "input": ["a", "b"], "dimensions": 2, "encoding_format": "float",
        "extra_field": 1})
    assert resp.status_code == 200
    assert resp.get_json() == answer | {"model": EMBED}
    (forwarded,) = sent(upstream, EMBED_URL)
    assert forwarded == {"input": ["a", "b"], "dimensions": 2, "encoding_format": "float"}


@pytest.mark.parametrize("body, field", [
    ({"model": EMBED}, "input"),
    ({"model": EMBED, "input": []}, "input"),
    ({"model": EMBED, "input": [1, "a"]}, "input"),
    ({"model": EMBED, "input": "a", "dimensions": 0}, "dimensions"),
    ({"model": EMBED, "input": "a", "encoding_format": "int8"}, "encoding_format"),
    ({"model": GPT, "input": "a"}, "not an embeddings model"),
])
def test_bad_embeddings_requests_are_openai_400s(client, body, field):
    resp = client.post("/v1/embeddings", headers=BEARER, json=body)
    assert resp.status_code == 400
    error = resp.get_json()["error"]
    assert error["type"] == "invalid_request_error" and field in error["message"]


# ------------------------------------------------------------------------ /v1/responses


def test_responses_on_claude_stream_the_responses_events(client, upstream):
    upstream.add(responses.POST, BEDROCK_STREAM, body=bedrock_stream(["Hel", "lo!"]),
                 content_type="text/event-stream")
    resp = client.post("/v1/responses", headers=BEARER, json={
        "model": "claude-sonnet-4-5", "instructions": "Be brief.", "input": "hi",
        "stream": True})
    assert resp.status_code == 200 and resp.mimetype == "text/event-stream"
    frames = [f for f in resp.get_data(as_text=True).split("\n\n") if f.startswith("event: ")]
    types = [f.split("\n")[0][7:] for f in frames]
    assert types[0] == "response.created" and types[-1] == "response.completed"
    deltas = [json.loads(f.split("\n")[1][6:])["delta"] for f in frames
              if f.startswith("event: response.output_text.delta")]
    assert "".join(deltas) == "Hello!"
    completed = json.loads(frames[-1].split("\n")[1][6:])["response"]
    assert completed["usage"]["input_tokens"] == 42 and completed["model"] == "claude-sonnet-4-5"


def test_responses_on_gpt_non_streaming(client, upstream):
    upstream.add(responses.POST, CHAT_URL, json=COMPLETION)
    resp = client.post("/v1/responses", headers=BEARER, json={"model": GPT, "input": "hi"})
    assert resp.status_code == 200, resp.get_data(as_text=True)
    body = resp.get_json()
    assert body["object"] == "response" and body["status"] == "completed"
    assert body["output"][0]["content"][0]["text"] == "Hi!"
    (forwarded,) = sent(upstream, CHAT_URL)
    assert forwarded["messages"] == [{"role": "user", "content": "hi"}]


def test_responses_refuse_server_state_in_openai_shape(client):
    resp = client.post("/v1/responses", headers=BEARER, json={
        "model": GPT, "input": "hi", "previous_response_id": "resp_1"})
    assert resp.status_code == 400
    assert "previous_response_id" in resp.get_json()["error"]["message"]


# ------------------------------------------------------------------ failures mid-stream


def test_azure_error_mid_stream_is_an_in_band_anthropic_error(client, upstream):
    broken = sse(FILTER_ONLY, chunk({"role": "assistant", "content": ""}),
                 chunk({"content": "Partial"}),
                 {"error": {"message": "Server overloaded, please retry", "code": "503"}})
    upstream.add(responses.POST, CHAT_URL, body=broken, content_type="text/event-stream")
    body = {"model": GPT, "max_tokens": 10, "stream": True,
            "messages": [{"role": "user", "content": "hi"}]}
    events = anthropic_events(client.post("/v1/messages", json=body, headers=ANTHROPIC))
    assert events[0][0] == "message_start" and events[-1][0] == "error"
    assert events[-1][1]["error"]["type"] == "overloaded_error"
    assert "message_stop" not in [n for n, _ in events]


def test_gemini_stream_cut_before_its_end_is_an_in_band_error(client, upstream):
    cut = sse({"candidates": [{"content": {"role": "model", "parts": [{"text": "Hi"}]},
                               "index": 0}], "modelVersion": GEMINI})
    upstream.add(responses.POST, GEN_STREAM_URL, body=cut, content_type="text/event-stream")
    body = {"model": GEMINI, "max_tokens": 10, "stream": True,
            "messages": [{"role": "user", "content": "hi"}]}
    resp = client.post("/v1/chat/completions", headers=BEARER, json={
        "model": GEMINI, "stream": True, "messages": body["messages"]})
    events = data_events(resp)
    assert events[-1] == "[DONE]" and "error" in events[-2]
    assert all(not c.get("choices") or c["choices"][0]["finish_reason"] is None
               for c in events[:-2])


def test_gpt_pass_through_error_mid_stream_is_an_openai_error_chunk(client, upstream):
    broken = sse(FILTER_ONLY, chunk({"role": "assistant", "content": ""}),
                 {"error": {"message": "The server had an error", "type": "server_error"}})
    upstream.add(responses.POST, CHAT_URL, body=broken, content_type="text/event-stream")
    resp = client.post("/v1/chat/completions", headers=BEARER, json={
        "model": GPT, "stream": True, "messages": [{"role": "user", "content": "hi"}]})
    events = data_events(resp)
    assert events[-1] == "[DONE]" and events.count("[DONE]") == 1
    assert events[-2]["error"]["message"] and events[-2]["error"]["type"] == "server_error"


def test_gemini_json_array_stream_when_alt_sse_is_off(tmp_path, upstream):
    settings = make_settings(tmp_path, models={GEMINI: ["d-gem"]},
                             model_profiles={GEMINI: {"alt_sse": False}})
    client = create_app(settings).test_client()
    try:
        objects = [
            {"candidates": [{"content": {"role": "model", "parts": [{"text": "Hel"}]},
                             "index": 0}], "modelVersion": GEMINI},
            {"candidates": [{"content": {"role": "model", "parts": [{"text": "lo!"}]},
                             "finishReason": "STOP", "index": 0}],
             "usageMetadata": {"promptTokenCount": 9, "candidatesTokenCount": 2,
                               "totalTokenCount": 11}, "modelVersion": GEMINI}]
        array = "[" + ",\r\n".join(json.dumps(o, indent=2) for o in objects) + "]"
        url = deployment_url("d-gem") + f"/models/{GEMINI}:streamGenerateContent"
        upstream.add(responses.POST, url, body=array, content_type="application/json")
        resp = client.post("/v1/messages", headers=ANTHROPIC, json={
            "model": GEMINI, "max_tokens": 50, "stream": True,
            "messages": [{"role": "user", "content": "hi"}]})
        events = anthropic_events(resp)
        text = "".join(d["delta"]["text"] for n, d in events
                       if n == "content_block_delta" and d["delta"]["type"] == "text_delta")
        assert text == "Hello!" and events[-1][0] == "message_stop"
        assert events[-2][1]["usage"]["input_tokens"] == 9
        assert [c.request.url for c in upstream.calls][-1] == url  # no ?alt=sse
    finally:
        runtime.install(None)
