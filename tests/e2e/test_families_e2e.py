"""End to end with the official SDKs: gunicorn+gevent gateway -> fake SAP AI Core with a
Claude, a GPT (Azure), a Gemini (Vertex) and an embeddings deployment. The openai SDK on
chat (create, stream, tool round trip), embeddings and responses for every family; the
anthropic SDK on GPT and Gemini (stream, tool round trip). The fake validates every
upstream body strictly, so a translation the real services would refuse fails here."""

from __future__ import annotations

import base64
import json
import struct

import anthropic
import openai
import pytest

from app.simulator import FakeAICore
from tests.e2e.conftest import GATEWAY_KEY, Gateway, gateway_config

pytestmark = pytest.mark.e2e

SONNET, GPT, GEMINI, EMBED = ("anthropic--claude-4.5-sonnet", "gpt-5.4", "gemini-2.5-pro",
                              "text-embedding-3-small")
GEMINI3 = "gemini-3-pro"  # the fake requires thought signatures back on its function calls
CHAT_MODELS = ("claude-sonnet-4-5", GPT, GEMINI, GEMINI3)
BASH_CHAT = {"type": "function", "function": {
    "name": "Bash", "description": "Run a shell command",
    "parameters": {"type": "object", "properties": {"command": {"type": "string"},
                                                    "description": {"type": "string"}},
                   "required": ["command"], "additionalProperties": False}}}
BASH_ANTHROPIC = {"name": "Bash", "description": "Run a shell command",
                  "input_schema": BASH_CHAT["function"]["parameters"]
                  | {"$schema": "https://json-schema.org/draft/2020-12/schema"}}
BASH_RESPONSES = {"type": "function", "name": "Bash", "description": "Run a shell command",
                  "parameters": BASH_CHAT["function"]["parameters"]}


@pytest.fixture(scope="module")
def fake():
    with FakeAICore() as server:
        server.add_deployment("d-sonnet", SONNET)
        server.add_deployment("d-gpt", GPT)
        server.add_deployment("d-gemini", GEMINI)
        server.add_deployment("d-gemini3", GEMINI3)
        server.add_deployment("d-embed", EMBED)
        yield server


@pytest.fixture(scope="module")
def gateway(fake, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("families")
    server = Gateway(gateway_config(fake, workdir), workdir)
    yield server
    server.stop()


@pytest.fixture
def oai(gateway):
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key=GATEWAY_KEY, max_retries=0,
                         timeout=30)


@pytest.fixture
def claude(gateway):
    return anthropic.Anthropic(base_url=gateway.url, api_key=GATEWAY_KEY, max_retries=0,
                               timeout=30)


def test_models_lists_every_family(oai):
    families = {m.id: m.model_extra.get("family") for m in oai.models.list()}
    assert families == {"claude-sonnet-4-5": "claude", GPT: "gpt", GEMINI: "gemini",
                        GEMINI3: "gemini", EMBED: "gpt"}


@pytest.mark.parametrize("model", CHAT_MODELS)
def test_chat_create_and_stream(oai, model):
    completion = oai.chat.completions.create(
        model=model, messages=[{"role": "system", "content": "Be brief."},
                               {"role": "user", "content": "say hello"}])
    assert completion.model == model
    assert "Hello from the fake SAP AI Core" in completion.choices[0].message.content
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage.prompt_tokens > 0 and completion.usage.completion_tokens > 0
    stream = oai.chat.completions.create(
        model=model, stream=True, stream_options={"include_usage": True},
        messages=[{"role": "user", "content": "say hello"}])
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "Hello from the fake SAP AI Core" in text
    assert {c.model for c in chunks} == {model}
    assert chunks[-1].choices == [] and chunks[-1].usage.prompt_tokens > 0


@pytest.mark.parametrize("model", CHAT_MODELS)
def test_chat_tool_round_trip_streamed(oai, model):
    messages = [{"role": "user", "content": "run the marker command"}]
    calls: dict[int, dict] = {}
    finish = None
    for chunk in oai.chat.completions.create(model=model, stream=True, tools=[BASH_CHAT],
                                             messages=messages):
        if not chunk.choices:
            continue
        finish = chunk.choices[0].finish_reason or finish
        for call in chunk.choices[0].delta.tool_calls or ():
            entry = calls.setdefault(call.index, {"arguments": ""})
            entry.update({k: v for k, v in (("id", call.id),
                                            ("name", call.function.name)) if v})
            entry["arguments"] += call.function.arguments or ""
    assert finish == "tool_calls"
    (call,) = calls.values()
    assert call["name"] == "Bash" and json.loads(call["arguments"])["command"]
    messages += [{"role": "assistant", "content": None, "tool_calls": [
                     {"id": call["id"], "type": "function",
                      "function": {"name": "Bash", "arguments": call["arguments"]}}]},
                 {"role": "tool", "tool_call_id": call["id"], "content": "fake-tool-ok"}]
    answer = oai.chat.completions.create(model=model, tools=[BASH_CHAT], messages=messages)
    assert answer.choices[0].message.content == "Tool said: fake-tool-ok"


def test_embeddings(oai):
    floats = oai.embeddings.create(model=EMBED, input=["alpha", "beta"], dimensions=8)
    assert [len(d.embedding) for d in floats.data] == [8, 8]
    assert floats.model == EMBED and floats.usage.prompt_tokens > 0
    raw = oai.embeddings.with_raw_response.create(model=EMBED, input="alpha", dimensions=8,
                                                  encoding_format="base64")
    packed = base64.b64decode(json.loads(raw.text)["data"][0]["embedding"])
    assert list(struct.unpack("<8f", packed)) == pytest.approx(floats.data[0].embedding)


@pytest.mark.parametrize("model", CHAT_MODELS)
def test_responses_create_stream_and_function_round_trip(oai, model):
    created = oai.responses.create(model=model, instructions="Be brief.", input="say hello")
    assert created.status == "completed" and "Hello from the fake" in created.output_text
    with oai.responses.stream(model=model, input="run the marker command",
                              tools=[BASH_RESPONSES]) as stream:
        final = stream.get_final_response()
    (call,) = [item for item in final.output if item.type == "function_call"]
    assert call.name == "Bash" and json.loads(call.arguments)["command"]
    follow = oai.responses.create(model=model, tools=[BASH_RESPONSES], input=[
        {"role": "user", "content": "run the marker command"},
        {"type": "function_call", "call_id": call.call_id, "name": "Bash",
         "arguments": call.arguments},
        {"type": "function_call_output", "call_id": call.call_id, "output": "fake-tool-ok"}])
    assert follow.output_text == "Tool said: fake-tool-ok"


@pytest.mark.parametrize("model", (GPT, GEMINI, GEMINI3))
def test_anthropic_sdk_stream_and_tool_round_trip(claude, model):
    messages = [{"role": "user", "content": "say hello"}]
    with claude.messages.stream(model=model, max_tokens=300, messages=messages) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert "Hello from the fake SAP AI Core" in text
    assert final.usage.input_tokens > 0 and final.usage.output_tokens > 0
    messages = [{"role": "user", "content": "run the marker command"}]
    with claude.messages.stream(model=model, max_tokens=300, tools=[BASH_ANTHROPIC],
                                messages=messages) as stream:
        first = stream.get_final_message()
    assert first.stop_reason == "tool_use"
    (use,) = [b for b in first.content if b.type == "tool_use"]
    assert use.id.startswith("toolu_") and use.name == "Bash" and use.input["command"]
    messages += [{"role": "assistant", "content": [b.model_dump(exclude_none=True)
                                                   for b in first.content]},
                 {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id,
                                               "content": "fake-tool-ok"}]}]
    second = claude.messages.create(model=model, max_tokens=300, tools=[BASH_ANTHROPIC],
                                    messages=messages)
    assert second.content[0].text == "Tool said: fake-tool-ok"


def test_gemini_json_array_stream_end_to_end(fake, tmp_path):
    """``alt_sse: false``: the fake answers the stream as a JSON array, as Vertex does."""
    config = gateway_config(fake, tmp_path, model_profiles={GEMINI: {"alt_sse": False}})
    server = Gateway(config, tmp_path, workers=1)
    try:
        client = anthropic.Anthropic(base_url=server.url, api_key=GATEWAY_KEY, max_retries=0,
                                     timeout=30)
        with client.messages.stream(model=GEMINI, max_tokens=300,
                                    messages=[{"role": "user", "content": "say hello"}]) as s:
            assert "Hello from the fake SAP AI Core" in "".join(s.text_stream)
            assert s.get_final_message().usage.output_tokens > 0
        last = [r for r in fake.inference_requests if r.deployment_id == "d-gemini"][-1]
        assert last.path.endswith(":streamGenerateContent") and "alt" not in last.query
    finally:
        server.stop()
