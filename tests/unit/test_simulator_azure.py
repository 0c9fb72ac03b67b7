"""The fake SAP AI Core's Azure OpenAI deployments (``app/simulator.py``), over real loopback HTTP.

Chat completions (request rules of sap-ai-core.md §8.1, answer §8.2, stream §8.3), embeddings
(§8.4), the scripted fault knobs on both endpoints, and the command line with GPT/Gemini models.
Every rejection is paired with the valid form of the same request, which must pass.
"""

from __future__ import annotations

import array
import base64
import json
import math
import pathlib
import signal
import subprocess
import sys
import time
import weakref

import pytest
import requests

from app.simulator import (
    AZURE_ERROR_EVENT_LINES,
    AZURE_MALFORMED_LINE,
    DEFAULT_REPLY,
    FakeAICore,
    Step,
)

GPT = "gpt-5.4"  # a reasoning model
GPT4O = "gpt-4o"  # a classic one
API = "2025-04-01-preview"
REPO = pathlib.Path(__file__).resolve().parents[2]
CLOCK = 1767225600


@pytest.fixture
def fake():
    with FakeAICore() as server:
        server.clock = lambda: CLOCK
        server.add_deployment("gpt", GPT)
        server.add_deployment("gpt4o", GPT4O)
        server.add_deployment("small", "text-embedding-3-small")
        server.add_deployment("large", "text-embedding-3-large")
        server.add_deployment("ada", "text-embedding-ada-002")
        server.add_deployment("claude", "anthropic--claude-4.5-sonnet")
        yield server


_tokens: weakref.WeakKeyDictionary[FakeAICore, str] = weakref.WeakKeyDictionary()


def token_of(fake: FakeAICore) -> str:
    r = requests.post(fake.base_url + "/auth/oauth/token", auth=(fake.client_id, fake.client_secret),
                      data={"grant_type": "client_credentials"})
    assert r.status_code == 200, r.text
    return r.json()["access_token"]


def ai_headers(fake: FakeAICore, token: str | None = None) -> dict:
    if token is None:
        if fake not in _tokens:
            _tokens[fake] = token_of(fake)
        token = _tokens[fake]
    return {"Authorization": f"Bearer {token}", "AI-Resource-Group": "default"}


def post(fake: FakeAICore, dep: str, suffix: str, body, api_version: str | None = API,
         headers: dict | None = None, **kwargs) -> requests.Response:
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    params = {"api-version": api_version} if api_version else {}
    return requests.post(f"{fake.base_url}/v2/inference/deployments/{dep}/{suffix}", params=params, data=data,
                         headers={**(headers or ai_headers(fake)), "Content-Type": "application/json"}, **kwargs)


def chat(fake, body, dep="gpt", **kwargs) -> requests.Response:
    return post(fake, dep, "chat/completions", body, **kwargs)


def embed(fake, body, dep="small", **kwargs) -> requests.Response:
    return post(fake, dep, "embeddings", body, **kwargs)


def chat_body(**changes) -> dict:
    body = {"messages": [{"role": "user", "content": "say hello"}]}
    body.update(changes)
    return {k: v for k, v in body.items() if v is not None}


def payloads(raw: bytes) -> list[str]:
    """The ``data:`` payloads of an SSE body: every event is exactly one ``data:`` line."""
    text = raw.decode().replace("\r\n", "\n")
    assert text.endswith("\n\n")
    out = []
    for event in text.split("\n\n")[:-1]:
        assert event.startswith("data: ") and "\n" not in event, event[:80]
        out.append(event[len("data: "):])
    return out


def chunks_of(raw: bytes) -> list:
    return ["[DONE]" if p == "[DONE]" else json.loads(p) for p in payloads(raw)]


def without_ids(chunks: list) -> list:
    """Chunks minus the per-call completion id (tool ids are per call too)."""
    out = []
    for chunk in chunks:
        if isinstance(chunk, dict):
            chunk = {k: v for k, v in chunk.items() if k != "id"}
        out.append(chunk)
    return out


def assemble(chunks: list) -> dict:
    """Content, tool calls, finish reason and usage accumulated from a chat stream."""
    content, calls, finish, usage = [], {}, None, None
    for chunk in chunks:
        if chunk == "[DONE]":
            continue
        if chunk.get("usage"):
            usage = chunk["usage"]
        for choice in chunk["choices"]:
            delta = choice["delta"]
            content.append(delta.get("content") or "")
            for call in delta.get("tool_calls", []):
                entry = calls.setdefault(call["index"], {"id": None, "name": None, "arguments": "", "parts": 0})
                if "id" in call:
                    entry["id"], entry["name"] = call["id"], call["function"]["name"]
                entry["arguments"] += call["function"]["arguments"]
                entry["parts"] += 1
            finish = choice["finish_reason"] or finish
    return {"content": "".join(content), "calls": [calls[i] for i in sorted(calls)], "finish": finish, "usage": usage}


BASH = {"type": "function", "function": {
    "name": "Bash", "description": "Run a command",
    "parameters": {"type": "object", "properties": {"command": {"type": "string"}}}}}
READ = {"type": "function", "function": {"name": "Read", "parameters": {"type": "object"}}}


def tool_turns(call_ids=("call_1",), answers=None) -> list[dict]:
    """user, assistant with tool_calls, one tool message per answered id."""
    calls = [{"id": c, "type": "function", "function": {"name": "Bash", "arguments": "{}"}} for c in call_ids]
    answers = call_ids if answers is None else answers
    return ([{"role": "user", "content": "run ls"}, {"role": "assistant", "content": None, "tool_calls": calls}]
            + [{"role": "tool", "tool_call_id": a, "content": "a.txt"} for a in answers])


# ---- the answer ---------------------------------------------------------------------------------


def test_chat_completion_shape(fake):
    r = chat(fake, chat_body(max_completion_tokens=1024))
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["id"].startswith("chatcmpl-") and answer["object"] == "chat.completion"
    assert answer["created"] == CLOCK and answer["model"] == GPT
    (choice,) = answer["choices"]
    assert choice["index"] == 0 and choice["finish_reason"] == "stop"
    assert choice["message"]["role"] == "assistant" and choice["message"]["content"] == DEFAULT_REPLY
    assert "tool_calls" not in choice["message"]
    assert "content_filter_results" in choice and answer["prompt_filter_results"][0]["prompt_index"] == 0
    usage = answer["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert usage["prompt_tokens_details"]["cached_tokens"] == 0
    assert usage["completion_tokens_details"]["reasoning_tokens"] > 0  # gpt-5.4 reasons
    assert usage["completion_tokens"] > usage["completion_tokens_details"]["reasoning_tokens"]


def test_reasoning_tokens_follow_the_model_and_effort(fake):
    def reasoning(dep, **changes):
        usage = chat(fake, chat_body(**changes), dep=dep).json()["usage"]
        return usage["completion_tokens_details"]["reasoning_tokens"]

    assert reasoning("gpt4o", max_tokens=100, temperature=0.2) == 0
    assert 0 == reasoning("gpt", reasoning_effort="minimal") < reasoning("gpt", reasoning_effort="low") \
        < reasoning("gpt") < reasoning("gpt", reasoning_effort="high")


def test_tool_call_answer(fake):
    answer = chat(fake, chat_body(messages=[{"role": "user", "content": "run ls please"}], tools=[BASH])).json()
    (choice,) = answer["choices"]
    assert choice["finish_reason"] == "tool_calls"
    (call,) = choice["message"]["tool_calls"]
    assert call["id"].startswith("call_") and len(call["id"]) <= 40
    assert call["type"] == "function" and call["function"]["name"] == "Bash"
    assert json.loads(call["function"]["arguments"]) == {"command": "echo fake-tool-ok", "description": "Echo a marker"}
    assert choice["message"]["content"] == "I'll run a shell command."


def test_system_reminder_parts_do_not_hide_the_prompt(fake):
    # Claude Code's user turns carry <system-reminder> text parts around the prompt
    parts = [{"type": "text", "text": "<system-reminder>context</system-reminder>"},
             {"type": "text", "text": "run ls please"},
             {"type": "text", "text": "<system-reminder>folded system message</system-reminder>"}]
    answer = chat(fake, chat_body(messages=[{"role": "user", "content": parts}], tools=[BASH])).json()
    assert answer["choices"][0]["finish_reason"] == "tool_calls"


PARALLEL = [{"type": "text", "text": "Reading and listing."},
            {"type": "tool_use", "name": "Read", "input": {"file_path": "/src/a.py"}},
            {"type": "tool_use", "name": "Bash", "input": {"command": "ls -la", "description": "List"}}]


def test_parallel_tool_calls_when_scripted(fake):
    fake.script("gpt", Step(reply=PARALLEL), Step(reply=PARALLEL[1:]))
    message = chat(fake, chat_body(tools=[READ, BASH])).json()["choices"][0]["message"]
    calls = message["tool_calls"]
    assert [c["function"]["name"] for c in calls] == ["Read", "Bash"]
    assert len({c["id"] for c in calls}) == 2
    assert [json.loads(c["function"]["arguments"]) for c in calls] == [PARALLEL[1]["input"], PARALLEL[2]["input"]]
    message = chat(fake, chat_body(tools=[READ, BASH])).json()["choices"][0]["message"]
    assert message["content"] is None and len(message["tool_calls"]) == 2  # tool calls only: content null


def test_tool_result_is_echoed(fake):
    body = chat_body(messages=tool_turns(), tools=[BASH])
    assert chat(fake, body).json()["choices"][0]["message"]["content"] == "Tool said: a.txt"


def test_output_limit_gives_length(fake):
    # gpt-5.4 spends 64 reasoning tokens at medium effort; the greeting needs 8 more
    answer = chat(fake, chat_body(max_completion_tokens=66)).json()
    choice, usage = answer["choices"][0], answer["usage"]
    assert choice["finish_reason"] == "length"
    assert DEFAULT_REPLY.startswith(choice["message"]["content"]) and choice["message"]["content"] != DEFAULT_REPLY
    assert usage["completion_tokens"] == 66
    starved = chat(fake, chat_body(max_completion_tokens=10)).json()["choices"][0]
    assert starved["finish_reason"] == "length" and starved["message"]["content"] == ""
    cut_tool = chat(fake, chat_body(messages=[{"role": "user", "content": "run ls"}], tools=[BASH],
                                    max_tokens=5), dep="gpt4o").json()["choices"][0]
    assert cut_tool["finish_reason"] == "length" and "tool_calls" not in cut_tool["message"]
    assert chat(fake, chat_body(max_completion_tokens=80)).json()["choices"][0]["finish_reason"] == "stop"


def test_cached_tokens_on_long_prompts(fake):
    long_system = {"role": "system", "content": "You are a careful assistant. " * 200}
    usage = chat(fake, chat_body(messages=[long_system, {"role": "user", "content": "hi"}])).json()["usage"]
    cached = usage["prompt_tokens_details"]["cached_tokens"]
    assert usage["prompt_tokens"] >= 1024 and cached > 0 and cached % 128 == 0 and cached <= usage["prompt_tokens"] // 2
    assert chat(fake, chat_body()).json()["usage"]["prompt_tokens_details"]["cached_tokens"] == 0


# ---- the stream ---------------------------------------------------------------------------------


@pytest.mark.parametrize("include_usage", [True, False])
def test_stream_grammar(fake, include_usage):
    fake.stream_event_count = 5
    options = {"stream_options": {"include_usage": True}} if include_usage else {}
    r = chat(fake, chat_body(stream=True, **options))
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/event-stream")
    chunks = chunks_of(r.content)
    assert chunks.count("[DONE]") == 1 and chunks[-1] == "[DONE]"
    first, role, *rest = chunks[:-1]
    assert first["choices"] == [] and first["id"] == "" and first["model"] == "" and first["prompt_filter_results"]
    assert role["choices"][0]["delta"] == {"role": "assistant", "content": "", "refusal": None}
    ids = {c["id"] for c in [role, *rest]}
    assert len(ids) == 1 and ids.pop().startswith("chatcmpl-")
    assert all(c["object"] == "chat.completion.chunk" and c["created"] == CLOCK and c["model"] == GPT
               for c in [role, *rest])
    usage_chunks = [c for c in rest if not c["choices"]]
    if include_usage:
        assert usage_chunks == [rest[-1]]
        usage = rest[-1]["usage"]
        assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
        assert "cached_tokens" in usage["prompt_tokens_details"]
        assert all(c["usage"] is None for c in [role, *rest[:-1]])
        rest = rest[:-1]
    else:
        assert usage_chunks == [] and all("usage" not in c for c in chunks[:-1])
    finish = rest[-1]["choices"][0]
    assert finish["delta"] == {} and finish["finish_reason"] == "stop"
    texts = [c["choices"][0]["delta"]["content"] for c in rest[:-1]]
    assert len(texts) == 5 and "".join(texts) == DEFAULT_REPLY
    assert all(c["choices"][0]["finish_reason"] is None for c in [role, *rest[:-1]])


def test_stream_and_answer_agree(fake):
    body = chat_body(messages=[{"role": "user", "content": "run ls"}], tools=[BASH])
    answer = chat(fake, body).json()
    stream_body = {**body, "stream": True, "stream_options": {"include_usage": True}}
    streamed = assemble(chunks_of(chat(fake, stream_body).content))
    message = answer["choices"][0]["message"]
    assert streamed["content"] == message["content"] and streamed["finish"] == "tool_calls"
    assert [(c["name"], json.loads(c["arguments"])) for c in streamed["calls"]] == [
        (c["function"]["name"], json.loads(c["function"]["arguments"])) for c in message["tool_calls"]]
    assert streamed["usage"]["completion_tokens"] == answer["usage"]["completion_tokens"]


def test_stream_parallel_tool_calls_in_fragments(fake):
    fake.script("gpt", Step(reply=PARALLEL))
    chunks = chunks_of(chat(fake, chat_body(tools=[READ, BASH], stream=True)).content)
    deltas = [c["choices"][0]["delta"] for c in chunks[:-1] if c["choices"]]
    starts = [d["tool_calls"][0] for d in deltas if "tool_calls" in d and "id" in d["tool_calls"][0]]
    assert [(s["index"], s["function"]["name"], s["function"]["arguments"]) for s in starts] == [
        (0, "Read", ""), (1, "Bash", "")]
    fragments = [d["tool_calls"][0] for d in deltas if "tool_calls" in d and "id" not in d["tool_calls"][0]]
    assert all(set(f) == {"index", "function"} and set(f["function"]) == {"arguments"} for f in fragments)
    indices = [d["tool_calls"][0]["index"] for d in deltas if "tool_calls" in d]
    assert indices == sorted(indices)  # call 0 whole, then call 1
    streamed = assemble(chunks)
    assert [c["parts"] > 3 for c in streamed["calls"]] == [True, True]  # several fragments each
    assert [json.loads(c["arguments"]) for c in streamed["calls"]] == [PARALLEL[1]["input"], PARALLEL[2]["input"]]
    assert streamed["content"] == "Reading and listing." and streamed["finish"] == "tool_calls"


# ---- request rules: each rejection, and the valid form of the same request ----------------------

LONG_ID = "call_" + "x" * 36  # 41 characters
OK_ID = "call_" + "x" * 35  # 40 characters

#: case -> (deployment, the rejected body changes, the accepted body changes, code, message fragment)
RULES = {
    "max_tokens on a reasoning model": (
        "gpt", dict(max_tokens=100), dict(max_completion_tokens=100), "unsupported_parameter",
        "Unsupported parameter: 'max_tokens' is not supported with this model. Use 'max_completion_tokens' instead."),
    "temperature on a reasoning model": (
        "gpt", dict(temperature=0.2), dict(temperature=1), "unsupported_value",
        "Unsupported value: 'temperature' does not support 0.2 with this model. "
        "Only the default (1) value is supported."),
    "top_p on a reasoning model": ("gpt", dict(top_p=0.5), dict(top_p=1), "unsupported_value", "'top_p'"),
    "presence_penalty on a reasoning model": (
        "gpt", dict(presence_penalty=0.5), dict(presence_penalty=0), "unsupported_value", "'presence_penalty'"),
    "logprobs on a reasoning model": ("gpt", dict(logprobs=True), dict(logprobs=False), "unsupported_parameter",
                                      "'logprobs'"),
    "reasoning object": ("gpt", dict(reasoning={"effort": "high"}), dict(reasoning_effort="high"),
                         "unknown_parameter", "Unknown parameter: 'reasoning'."),
    "reasoning_effort value": ("gpt", dict(reasoning_effort="extreme"), dict(reasoning_effort="minimal"),
                               "unsupported_value", "'reasoning_effort'"),
    "reasoning_effort on a classic model": ("gpt4o", dict(reasoning_effort="low"), dict(temperature=0.2),
                                            "unsupported_parameter", "'reasoning_effort'"),
    "max and max_completion together": ("gpt4o", dict(max_tokens=10, max_completion_tokens=10),
                                        dict(max_tokens=10), None, "at the same time"),
    "output limit of the model": ("gpt4o", dict(max_tokens=16385), dict(max_tokens=16384), "invalid_value",
                                  "supports at most 16384 completion tokens"),
    "stream_options without stream": (
        "gpt", dict(stream_options={"include_usage": True}), dict(stream=True, stream_options={"include_usage": True}),
        None, "The 'stream_options' parameter is only allowed when 'stream' is enabled."),
    "unknown stream option": ("gpt", dict(stream=True, stream_options={"usage": True}),
                              dict(stream=True, stream_options={"include_usage": False}), "unknown_parameter",
                              "stream_options.usage"),
    "unknown parameter": ("gpt", dict(foo=1), dict(user="u1"), "unknown_parameter", "Unknown parameter: 'foo'."),
    "role": ("gpt", dict(messages=[{"role": "human", "content": "hi"}]),
             dict(messages=[{"role": "developer", "content": "Be brief."}, {"role": "user", "content": "hi"}]),
             "invalid_value", "Invalid value: 'human'."),
    "empty messages": ("gpt", dict(messages=[]), dict(), "empty_array", "'messages': empty array"),
    "content part type": (
        "gpt", dict(messages=[{"role": "user", "content": [{"type": "tool_result", "content": "x"}]}]),
        dict(messages=[{"role": "user", "content": [{"type": "text", "text": "hi"}]}]), "invalid_value",
        "Invalid value: 'tool_result'."),
    "assistant without content or tool_calls": (
        "gpt", dict(messages=[{"role": "user", "content": "a"}, {"role": "assistant"},
                              {"role": "user", "content": "b"}]),
        dict(messages=[{"role": "user", "content": "a"}, {"role": "assistant", "content": "ok"},
                       {"role": "user", "content": "b"}]),
        "missing_required_parameter", "messages[1].content"),
    "tool message without tool_calls before it": (
        "gpt", dict(messages=[{"role": "user", "content": "run ls"}, {"role": "tool", "tool_call_id": "call_1",
                                                                       "content": "x"}]),
        dict(messages=tool_turns()), None,
        "messages with role 'tool' must be a response to a preceeding message with 'tool_calls'"),
    "tool_call_id not asked for": ("gpt", dict(messages=tool_turns(answers=("call_2",))), dict(messages=tool_turns()),
                                   None, "'tool_call_id' of 'call_2' not found in 'tool_calls' of previous message"),
    "tool call id over 40 characters": (
        "gpt", dict(messages=tool_turns((LONG_ID,))), dict(messages=tool_turns((OK_ID,))), "string_above_max_length",
        "Expected a string with maximum length 40, but got a string with length 41 instead."),
    "tool message not directly after": (
        "gpt", dict(messages=tool_turns(answers=()) + [{"role": "user", "content": "well?"},
                                                       {"role": "tool", "tool_call_id": "call_1", "content": "x"}]),
        dict(messages=tool_turns() + [{"role": "user", "content": "well?"}]), None,
        "The following tool_call_ids did not have response messages: call_1"),
    "a parallel call left unanswered": (
        "gpt", dict(messages=tool_turns(("call_1", "call_2"), answers=("call_1",))),
        dict(messages=tool_turns(("call_1", "call_2"))), None, "did not have response messages: call_2"),
    "tool call arguments not a string": (
        "gpt", dict(messages=[{"role": "user", "content": "a"}, {"role": "assistant", "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "Bash", "arguments": {}}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "x"}]),
        dict(messages=tool_turns()), "invalid_type", "function.arguments"),
    "tool name": ("gpt", dict(tools=[{"type": "function", "function": {"name": "my.tool"}}]),
                  dict(tools=[{"type": "function", "function": {"name": "my_tool"}}]), "invalid_value",
                  "tools[0].function.name"),
    "empty tools": ("gpt", dict(tools=[]), dict(tools=[BASH]), "empty_array", "'tools': empty array"),
    "tool_choice without tools": ("gpt", dict(tool_choice="auto"), dict(tool_choice="auto", tools=[BASH]), None,
                                  "'tool_choice' is only allowed when 'tools' are specified"),
}


@pytest.mark.parametrize("case", list(RULES))
def test_chat_rule_rejects_and_the_valid_form_passes(fake, case):
    dep, bad, good, code, fragment = RULES[case]
    r = chat(fake, chat_body(**bad), dep=dep)
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error" and error["code"] == code
    assert fragment in error["message"]
    r = chat(fake, chat_body(**good), dep=dep)
    assert r.status_code == 200, r.text


def test_max_tokens_is_fine_on_a_classic_model(fake):
    r = chat(fake, chat_body(max_tokens=100, temperature=0.2, top_p=0.9), dep="gpt4o")
    assert r.status_code == 200, r.text


def test_api_version_is_required(fake):
    r = chat(fake, chat_body(), api_version=None)
    assert r.status_code == 400
    error = r.json()["error"]
    assert error["code"] == "MissingApiVersionParameter" and "api-version" in error["message"]
    assert chat(fake, chat_body(), api_version="latest").status_code == 404
    assert embed(fake, {"input": "x"}, api_version=None).status_code == 400
    assert chat(fake, chat_body(), api_version="2024-10-21").status_code == 200
    assert fake.inference_requests[-1].query == {"api-version": "2024-10-21"}


def test_malformed_json(fake):
    r = chat(fake, b"{not json")
    assert r.status_code == 400 and "could not parse the JSON body" in r.json()["error"]["message"]


def test_non_strict_skips_the_rules(fake):
    fake.strict = False
    assert chat(fake, chat_body(max_tokens=100, temperature=0.3, reasoning={"effort": "low"})).status_code == 200


def test_operations_are_per_model(fake):
    r = chat(fake, chat_body(), dep="small")
    assert r.status_code == 400 and r.json()["error"]["code"] == "OperationNotSupported"
    assert "chatCompletion operation does not work" in r.json()["error"]["message"]
    r = embed(fake, {"input": "x"}, dep="gpt")
    assert r.status_code == 400 and "embeddings operation does not work" in r.json()["error"]["message"]
    assert chat(fake, chat_body(), dep="claude").status_code == 404
    assert post(fake, "gpt", "invoke", {}).status_code == 404


# ---- fault knobs ----------------------------------------------------------------------------------


def test_status_sequence_with_retry_after(fake):
    fake.script("gpt", Step(status=429, retry_after=3), 500, 503, 200)
    r = chat(fake, chat_body())
    assert r.status_code == 429 and r.headers["Retry-After"] == "3"
    error = r.json()["error"]
    assert error["code"] == "429" and "retry after 3 seconds" in error["message"]
    assert f"API version {API}" in error["message"] and "ChatCompletions_Create" in error["message"]
    r = chat(fake, chat_body())
    assert r.status_code == 500 and r.json()["error"]["type"] == "server_error"
    assert chat(fake, chat_body()).status_code == 503
    assert chat(fake, chat_body(stream=True)).status_code == 200
    assert chat(fake, chat_body()).status_code == 200  # script used up


def test_token_revoked_once(fake):
    token = token_of(fake)
    fake.script("gpt", Step(revoke_token=True))
    r = chat(fake, chat_body(), headers=ai_headers(fake, token))
    assert r.status_code == 401 and r.json() == {"message": "Jwt is expired"}
    assert chat(fake, chat_body(), headers=ai_headers(fake, token)).status_code == 401
    assert chat(fake, chat_body(), headers=ai_headers(fake, token_of(fake))).status_code == 200


def test_delays(fake):
    # the gap comes after event 1, the role chunk (event 0 is the filter-only chunk)
    fake.script("gpt", Step(headers_delay=0.15), Step(first_event_delay=0.15, gap_after_event=(1, 0.1)))
    t0 = time.monotonic()
    assert chat(fake, chat_body()).status_code == 200
    assert time.monotonic() - t0 >= 0.15
    t0 = time.monotonic()
    with chat(fake, chat_body(stream=True), stream=True) as r:
        headers_at = time.monotonic() - t0
        arrivals = [(time.monotonic() - t0, chunk) for chunk in r.iter_content(chunk_size=None)]
    assert headers_at < 0.15  # headers are flushed before the first event
    assert arrivals[0][0] >= 0.15
    assert arrivals[0][1].startswith(b'data: {"id":"","object":""')  # the filter-only chunk came first
    later = next(t for t, chunk in arrivals if b'"content":"' in chunk and b'"role"' not in chunk)
    assert later - arrivals[0][0] >= 0.1


@pytest.mark.parametrize("chunking", ["byte", "random", "crlf"])
def test_chunking_keeps_the_events(fake, chunking):
    body = chat_body(messages=[{"role": "user", "content": "hi"}], stream=True, stream_options={"include_usage": True})
    plain = without_ids(chunks_of(chat(fake, body).content))
    fake.script("gpt", Step(chunking=chunking))
    with chat(fake, body, stream=True) as r:
        pieces = list(r.iter_content(chunk_size=None))
    raw = b"".join(pieces)
    assert without_ids(chunks_of(raw)) == plain
    if chunking == "byte":
        assert len(pieces) == len(raw)
    if chunking == "crlf":
        assert raw.count(b"\r\n\r\n") == len(plain)


@pytest.mark.parametrize("shape", sorted(AZURE_ERROR_EVENT_LINES) + ["typed_overloaded"])
def test_mid_stream_error_event(fake, shape):
    fake.script("gpt", Step(error_event=shape, error_after_events=3))
    lines = payloads(chat(fake, chat_body(stream=True)).content)
    assert len(lines) == 4 and "[DONE]" not in lines
    expected = AZURE_ERROR_EVENT_LINES["server_error" if shape == "typed_overloaded" else shape]
    assert lines[-1] == expected
    if shape != "non_json":
        error = json.loads(lines[-1])["error"]
        assert error["message"] and {"type", "param", "code"} <= set(error)


def test_eof_malformed_huge_and_raw_body(fake):
    fake.script("gpt", Step(eof_after_events=3), Step(malformed_line_after=2), Step(huge_json_delta=True),
                Step(body="data: [DONE]\n\n"))
    lines = payloads(chat(fake, chat_body(stream=True)).content)
    assert len(lines) == 3 and "[DONE]" not in lines and all(json.loads(line) for line in lines)

    lines = payloads(chat(fake, chat_body(stream=True)).content)
    assert lines[2] == AZURE_MALFORMED_LINE and lines[-1] == "[DONE]"
    assert [json.loads(line) for line in lines[:2] + lines[3:-1]]

    huge = assemble(chunks_of(chat(fake, chat_body(stream=True)).content))
    (call,) = huge["calls"]
    assert call["parts"] == 2  # the start chunk, then the whole ~1 MB arguments in one fragment
    assert json.loads(call["arguments"])["content"] == "A" * 1_000_000

    assert chat(fake, chat_body(stream=True)).content == b"data: [DONE]\n\n"


def test_every_request_is_recorded(fake):
    body = chat_body(stream=True, stream_options={"include_usage": True})
    chat(fake, body)
    embed(fake, {"input": "x"})
    chat_record, embed_record = fake.inference_requests[-2:]
    assert chat_record.deployment_id == "gpt" and chat_record.path.endswith("/gpt/chat/completions")
    assert chat_record.query == {"api-version": API} and chat_record.json == body
    assert chat_record.headers["ai-resource-group"] == "default"
    assert chat_record.headers["Authorization"].startswith("Bearer tok-")
    assert chat_record.status == 200 and embed_record.json == {"input": "x"}


# ---- embeddings -----------------------------------------------------------------------------------


def norm(vector) -> float:
    return math.sqrt(sum(v * v for v in vector))


def test_embeddings_shape_and_usage(fake):
    r = embed(fake, {"input": ["hello world", "goodbye"]})
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["object"] == "list" and answer["model"] == "text-embedding-3-small"
    assert [(d["object"], d["index"]) for d in answer["data"]] == [("embedding", 0), ("embedding", 1)]
    assert [len(d["embedding"]) for d in answer["data"]] == [1536, 1536]
    assert answer["usage"] == {"prompt_tokens": 2 + 1, "total_tokens": 3}  # ~4 characters per token
    assert len(embed(fake, {"input": "x"}, dep="large").json()["data"][0]["embedding"]) == 3072
    assert len(embed(fake, {"input": "x"}, dep="ada").json()["data"][0]["embedding"]) == 1536
    tokens = embed(fake, {"input": [[1, 2, 3], [4]]}).json()
    assert len(tokens["data"]) == 2 and tokens["usage"]["prompt_tokens"] == 4


def test_embeddings_are_deterministic_unit_vectors(fake):
    first = embed(fake, {"input": ["alpha", "beta"]}).json()["data"]
    again = embed(fake, {"input": "alpha"}).json()["data"][0]["embedding"]
    assert first[0]["embedding"] == again
    assert first[0]["embedding"] != first[1]["embedding"]
    assert all(abs(norm(d["embedding"]) - 1) < 1e-5 for d in first)
    short = embed(fake, {"input": "alpha", "dimensions": 256}).json()["data"][0]["embedding"]
    assert len(short) == 256 and abs(norm(short) - 1) < 1e-5
    prefix = again[:256]
    cosine = sum(a * b for a, b in zip(short, prefix)) / norm(prefix)
    assert cosine > 0.99999  # a shortened vector points where the full one's head does


def test_embeddings_base64_is_little_endian_float32(fake):
    as_float = embed(fake, {"input": "alpha", "dimensions": 64}).json()["data"][0]["embedding"]
    encoded = embed(fake, {"input": "alpha", "dimensions": 64, "encoding_format": "base64"}).json()["data"][0]
    assert isinstance(encoded["embedding"], str)
    decoded = array.array("f", base64.b64decode(encoded["embedding"]))
    if sys.byteorder != "little":
        decoded.byteswap()
    assert decoded.tolist() == as_float


#: case -> (rejected body, accepted body, deployment, message fragment)
EMBEDDING_RULES = {
    "input missing": ({"encoding_format": "float"}, {"input": "x", "encoding_format": "float"}, "small",
                      "Missing required parameter: 'input'."),
    "empty input": ({"input": ""}, {"input": " "}, "small", "'$.input' is invalid"),
    "input of objects": ({"input": [{"text": "x"}]}, {"input": ["x"]}, "small", "'$.input' is invalid"),
    "encoding_format": ({"input": "x", "encoding_format": "hex"}, {"input": "x", "encoding_format": "base64"},
                        "small", "Invalid value: 'hex'."),
    "dimensions on ada": ({"input": "x", "dimensions": 256}, {"input": "x"}, "ada",
                          "This model does not support specifying dimensions."),
    "dimensions above native": ({"input": "x", "dimensions": 1537}, {"input": "x", "dimensions": 1536}, "small",
                                "'dimensions' = 1537"),
    "dimensions zero": ({"input": "x", "dimensions": 0}, {"input": "x", "dimensions": 1}, "small",
                        "'dimensions' = 0"),
    "unknown parameter": ({"input": "x", "truncate": True}, {"input": "x", "user": "u"}, "small",
                          "Unknown parameter: 'truncate'."),
}


@pytest.mark.parametrize("case", list(EMBEDDING_RULES))
def test_embedding_rule_rejects_and_the_valid_form_passes(fake, case):
    bad, good, dep, fragment = EMBEDDING_RULES[case]
    r = embed(fake, bad, dep=dep)
    assert r.status_code == 400, r.text
    assert fragment in r.json()["error"]["message"]
    assert embed(fake, good, dep=dep).status_code == 200


def test_embedding_knobs(fake):
    fake.script("small", Step(status=429, retry_after=7), Step(headers_delay=0.1), Step(body={"data": []}))
    r = embed(fake, {"input": "x"})
    assert r.status_code == 429 and r.headers["Retry-After"] == "7"
    assert "Embeddings_Create" in r.json()["error"]["message"]
    t0 = time.monotonic()
    assert embed(fake, {"input": "x"}).status_code == 200 and time.monotonic() - t0 >= 0.1
    assert embed(fake, {"input": "x"}).json() == {"data": []}


# ---- command line ---------------------------------------------------------------------------------


def test_command_line_adds_gpt_and_gemini_deployments(tmp_path):
    key_path = tmp_path / "key.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "app.simulator", "--port", "0", "--add-model", "gpt-5.4",
         "--add-model", "gemini-2.5-pro,text-embedding-3-small", "--write-key", str(key_path)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    try:
        line = proc.stdout.readline().strip()
        assert line.startswith("READY http://127.0.0.1:")
        base = line.split()[1]
        key = json.loads(key_path.read_text())
        token = requests.post(key["url"] + "/oauth/token", auth=(key["clientid"], key["clientsecret"]),
                              data={"grant_type": "client_credentials"}).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}", "AI-Resource-Group": "default"}
        deps = requests.get(base + "/v2/lm/deployments", headers=headers).json()["resources"]
        urls = {d["details"]["resources"]["backend_details"]["model"]["name"]: d["deploymentUrl"] for d in deps}
        assert sorted(urls) == ["anthropic--claude-4.5-haiku", "anthropic--claude-4.5-sonnet", "gemini-2.5-pro",
                                "gpt-5.4", "text-embedding-3-small"]  # the defaults stay
        r = requests.post(urls["gpt-5.4"] + "/chat/completions", params={"api-version": API},
                          json=chat_body(), headers=headers)
        assert r.json()["choices"][0]["message"]["content"] == DEFAULT_REPLY
        r = requests.post(urls["gemini-2.5-pro"] + "/models/gemini-2.5-pro:generateContent",
                          json={"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}, headers=headers)
        assert r.json()["candidates"][0]["content"]["parts"][-1]["text"] == DEFAULT_REPLY
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=5) == 0
