"""End to end: the official openai SDK -> gunicorn+gevent gateway -> fake SAP AI Core
(Claude deployments), through POST /v1/chat/completions."""

from __future__ import annotations

import json

import openai
import pytest
import requests

from app.simulator import Step
from tests.e2e.conftest import GATEWAY_KEY

pytestmark = pytest.mark.e2e

BASH = {"type": "function", "function": {
    "name": "Bash", "description": "Run a shell command",
    "parameters": {"type": "object", "properties": {"command": {"type": "string"}},
                   "required": ["command"]}}}


@pytest.fixture
def client(gateway):
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key=GATEWAY_KEY, max_retries=0,
                         timeout=30)


def test_chat_create(client):
    completion = client.chat.completions.create(
        model="claude-sonnet-4-5",
        messages=[{"role": "system", "content": "Be brief."},
                  {"role": "user", "content": "say hello"}])
    assert completion.object == "chat.completion" and completion.id.startswith("chatcmpl-")
    assert completion.model == "claude-sonnet-4-5"
    choice = completion.choices[0]
    assert "Hello from the fake SAP AI Core" in choice.message.content
    assert choice.finish_reason == "stop" and choice.message.tool_calls is None
    usage = completion.usage
    assert usage.prompt_tokens > 0 and usage.completion_tokens > 0
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


def test_chat_stream(client):
    stream = client.chat.completions.create(
        model="anthropic--claude-4.5-haiku", stream=True,
        stream_options={"include_usage": True},
        messages=[{"role": "user", "content": "say hello"}])
    chunks = list(stream)
    assert len({c.id for c in chunks}) == 1
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "Hello from the fake SAP AI Core" in text
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "stop" and set(finishes[:-1]) == {None}
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens > 0


def test_tool_round_trip(client):
    messages = [{"role": "user", "content": "please run ls in the shell"}]
    first = client.chat.completions.create(model="claude-sonnet-4-5", messages=messages,
                                           tools=[BASH])
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    (call,) = choice.message.tool_calls
    assert call.function.name == "Bash"
    assert json.loads(call.function.arguments)["command"] == "echo fake-tool-ok"
    messages += [choice.message.model_dump(exclude_none=True),
                 {"role": "tool", "tool_call_id": call.id, "content": "file-a\nfile-b"}]
    stream = client.chat.completions.create(model="claude-sonnet-4-5", messages=messages,
                                            tools=[BASH], stream=True)
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.startswith("Tool said: file-a")
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_streamed_tool_call_arguments_accumulate_to_json(client):
    stream = client.chat.completions.create(
        model="claude-sonnet-4-5", stream=True, tools=[BASH],
        messages=[{"role": "user", "content": "run the tests in the shell"}])
    calls: dict = {}
    finish = None
    for chunk in stream:
        delta = chunk.choices[0].delta
        for part in delta.tool_calls or ():
            entry = calls.setdefault(part.index, {"id": part.id, "name": part.function.name,
                                                  "arguments": ""})
            entry["arguments"] += part.function.arguments or ""
        finish = chunk.choices[0].finish_reason or finish
    assert finish == "tool_calls"
    (call,) = calls.values()
    assert call["id"] and call["name"] == "Bash"
    assert json.loads(call["arguments"]) == {"command": "echo fake-tool-ok",
                                             "description": "Echo a marker"}


def test_errors_reach_the_sdk_as_its_own_exceptions(client, fake):
    with pytest.raises(openai.NotFoundError) as missing:
        client.chat.completions.create(model="gpt-4o",
                                       messages=[{"role": "user", "content": "hi"}])
    assert missing.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError) as bad:
        client.chat.completions.create(model="claude-sonnet-4-5", n=2,
                                       messages=[{"role": "user", "content": "hi"}])
    assert "n=1" in bad.value.message
    for _ in range(4):  # whichever worker asks
        fake.script("d-haiku", Step(status=429, retry_after=3))
    with pytest.raises(openai.RateLimitError) as throttled:
        client.chat.completions.create(model="claude-haiku-4-5",
                                       messages=[{"role": "user", "content": "hi"}])
    assert throttled.value.response.headers["retry-after"] == "3"
    fake.reset()
    stranger = openai.OpenAI(base_url=client.base_url, api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as refused:
        stranger.chat.completions.create(model="claude-sonnet-4-5",
                                         messages=[{"role": "user", "content": "hi"}])
    assert refused.value.code == "invalid_api_key"


def test_mid_stream_failure_raises_in_the_sdk(client, fake):
    fake.script("d-sonnet", Step(error_event="typed_overloaded", error_after_events=3))
    stream = client.chat.completions.create(
        model="claude-sonnet-4-5", stream=True,
        messages=[{"role": "user", "content": "say hello"}])
    seen = []
    with pytest.raises(openai.APIError) as info:
        for chunk in stream:
            seen.append(chunk)
    assert info.value.body["type"] == "service_unavailable_error"
    assert seen and all(c.choices[0].finish_reason is None for c in seen)
    fake.reset()


def test_keep_alive_is_an_sse_comment_and_the_sdk_skips_it(gateway, client, fake):
    fake.script("d-sonnet", Step(gap_after_event=(2, 2.5)))  # ping_interval is 1 s here
    with requests.post(gateway.url + "/v1/chat/completions", stream=True, timeout=30,
                       headers={"Authorization": "Bearer " + GATEWAY_KEY},
                       json={"model": "claude-sonnet-4-5", "stream": True,
                             "messages": [{"role": "user", "content": "say hello"}]}) as resp:
        raw = b"".join(resp.iter_content(chunk_size=None))
    assert b"\n: ping\n\n" in raw
    assert b"event:" not in raw and raw.endswith(b"data: [DONE]\n\n")
    fake.script("d-sonnet", Step(gap_after_event=(2, 2.5)))
    stream = client.chat.completions.create(
        model="claude-sonnet-4-5", stream=True,
        messages=[{"role": "user", "content": "say hello"}])
    text = "".join(c.choices[0].delta.content or "" for c in stream)
    assert "Hello from the fake SAP AI Core" in text
    fake.reset()


def test_reasoning_effort_returns_the_thinking_as_reasoning_content(client, fake):
    fake.reset()
    completion = client.chat.completions.create(
        model="claude-sonnet-4-5", reasoning_effort="low",
        messages=[{"role": "user", "content": "say hello"}])
    message = completion.choices[0].message
    assert "Hello from the fake SAP AI Core" in message.content
    assert message.model_extra["reasoning_content"]
    (sent,) = [r for r in fake.inference_requests if r.path.endswith("/invoke")]
    body = sent.json
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 1024}
    assert body["max_tokens"] == 4096 + 1024
    stream = client.chat.completions.create(
        model="claude-sonnet-4-5", reasoning_effort="low", stream=True,
        messages=[{"role": "user", "content": "say hello"}])
    reasoning = "".join((c.choices[0].delta.model_extra or {}).get("reasoning_content") or ""
                        for c in stream if c.choices)
    assert reasoning == message.model_extra["reasoning_content"]
