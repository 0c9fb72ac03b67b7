"""message_from_chat_completion: Azure chat.completion answers (tests/golden/gpt/response/
<case>.in.json, sap-ai-core.md §8.2) -> Bedrock-shaped Anthropic messages (<case>.out.json),
checked against the Anthropic message rules and carried on through the existing client-side
translators. ``UPDATE_GOLDEN=1`` rewrites the goldens; a missing or different one fails.
"""

from __future__ import annotations

import copy
import json
import re

import pytest

from app.translate.bedrock_stream import message_from_bedrock, usage_from_message
from app.translate.gpt.response import (
    GptResponseError,
    anthropic_tool_id,
    message_from_chat_completion,
    stop_reason_for,
    tool_input,
    usage_from_chat,
)
from app.translate.openai.chat_response import completion_from_message
from tests.unit.test_gpt_request import GOLDEN as REQUEST_GOLDEN, check_golden

GOLDEN = REQUEST_GOLDEN.parent / "response"
MODEL = "gpt-5"
TOOL_ID = re.compile(r"^[a-zA-Z0-9_-]+$")
STOP_REASONS = {"end_turn", "max_tokens", "tool_use", "refusal"}


def cases() -> list[str]:
    names = sorted(p.name[: -len(".in.json")] for p in GOLDEN.glob("*.in.json"))
    assert names, f"no golden inputs in {GOLDEN}"
    return names


def validate_message(message: dict) -> None:
    assert set(message) == {"id", "type", "role", "model", "content", "stop_reason",
                            "stop_sequence", "usage"}
    assert message["id"].startswith("msg_") and message["type"] == "message"
    assert message["role"] == "assistant" and message["model"] == MODEL
    assert message["stop_reason"] in STOP_REASONS and message["stop_sequence"] is None
    for block in message["content"]:
        if block["type"] == "text":
            assert block["text"], "no empty text blocks"
        else:
            assert block["type"] == "tool_use" and TOOL_ID.match(block["id"])
            assert isinstance(block["input"], dict) and block["name"]
    assert set(message["usage"]) == {"input_tokens", "output_tokens", "cache_read_input_tokens",
                                     "cache_creation_input_tokens"}
    assert all(type(v) is int and v >= 0 for v in message["usage"].values())


@pytest.mark.parametrize("case", cases())
def test_response_golden(case):
    completion = json.loads((GOLDEN / f"{case}.in.json").read_text(encoding="utf-8"))
    before = copy.deepcopy(completion)
    message = message_from_chat_completion(completion, model=MODEL)
    assert completion == before, "the upstream answer was mutated"
    validate_message(message)
    check_golden(GOLDEN / f"{case}.out.json", message)


@pytest.mark.parametrize("case", cases())
def test_the_message_goes_through_the_client_side_translators(case):
    completion = json.loads((GOLDEN / f"{case}.in.json").read_text(encoding="utf-8"))
    message = message_from_chat_completion(completion, model=MODEL)
    assert message_from_bedrock(message, model=MODEL) == message  # nothing left to clean
    usage = usage_from_message(message)
    prompt = completion["usage"]["prompt_tokens"]
    assert usage["input_tokens"] + usage["cache_read_input_tokens"] == prompt
    chat = completion_from_message(message, model=MODEL, completion_id="chatcmpl-x", created=1)
    assert chat["usage"]["prompt_tokens"] == prompt
    assert chat["usage"]["completion_tokens"] == completion["usage"]["completion_tokens"]
    upstream_calls = completion["choices"][0]["message"].get("tool_calls") or []
    assert len(chat["choices"][0]["message"].get("tool_calls", [])) == len(upstream_calls)


def test_spec_example():
    completion = json.loads((GOLDEN / "text.in.json").read_text(encoding="utf-8"))
    assert message_from_chat_completion(completion, model="gpt-5") == {
        "id": "msg_chatcmpl-1", "type": "message", "role": "assistant", "model": "gpt-5",
        "content": [{"type": "text", "text": "Hi!"}], "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 8, "output_tokens": 3, "cache_creation_input_tokens": 0,
                  "cache_read_input_tokens": 0}}


@pytest.mark.parametrize("arguments, expected", [
    ('{"a": 1}', {"a": 1}),
    ("", {}),
    ("  ", {}),
    (None, {}),
    ({"a": 1}, {"a": 1}),
    ('{"a": ', {"arguments": '{"a": '}),
    ("[1]", {"arguments": "[1]"}),
    ('"text"', {"arguments": '"text"'}),
    ("[" * 100000, {"arguments": "[" * 100000}),
])
def test_tool_input(arguments, expected):
    assert tool_input(arguments) == expected


@pytest.mark.parametrize("call_id, expected", [
    ("call_abc", "toolu_call_abc"),
    ("toolu_01", "toolu_01"),
    ("", "toolu_fallback"),
    (None, "toolu_fallback"),
])
def test_anthropic_tool_id(call_id, expected):
    assert anthropic_tool_id(call_id, "toolu_fallback") == expected


def test_tool_ids_with_odd_characters_become_safe_and_stay_stable():
    one = anthropic_tool_id("call.with:odd", "x")
    assert TOOL_ID.match(one) and one == anthropic_tool_id("call.with:odd", "x")


@pytest.mark.parametrize("usage, expected", [
    ({"prompt_tokens": 3062, "completion_tokens": 41, "prompt_tokens_details": {"cached_tokens": 3050}},
     (12, 41, 3050)),
    ({"prompt_tokens": 5, "completion_tokens": 1}, (5, 1, 0)),
    ({"prompt_tokens": 5, "prompt_tokens_details": None}, (5, 0, 0)),
    ({"prompt_tokens": 5, "prompt_tokens_details": {"cached_tokens": 9}}, (0, 0, 5)),
    (None, (0, 0, 0)),
    ({"prompt_tokens": -3, "completion_tokens": "7"}, (0, 0, 0)),
])
def test_usage_from_chat(usage, expected):
    got = usage_from_chat(usage)
    assert (got["input_tokens"], got["output_tokens"], got["cache_read_input_tokens"]) == expected
    assert got["cache_creation_input_tokens"] == 0


@pytest.mark.parametrize("finish, calls, reason", [
    ("stop", False, "end_turn"), ("stop", True, "tool_use"), ("length", True, "max_tokens"),
    ("tool_calls", True, "tool_use"), ("function_call", True, "tool_use"),
    ("content_filter", False, "refusal"), (None, False, "end_turn"), ("weird", False, "end_turn"),
])
def test_stop_reason_for(finish, calls, reason):
    assert stop_reason_for(finish, has_tool_calls=calls) == reason


@pytest.mark.parametrize("completion", [
    {}, {"choices": []}, {"choices": [{"index": 0}]}, {"choices": "x"}, [],
    {"error": {"message": "bad"}},
])
def test_answers_without_a_message_are_an_upstream_error(completion):
    with pytest.raises(GptResponseError, match="choices"):
        message_from_chat_completion(completion, model=MODEL)


def test_no_id_and_empty_content():
    message = message_from_chat_completion(
        {"choices": [{"finish_reason": "length", "message": {"role": "assistant", "content": None}}]},
        model=MODEL)
    assert message["id"] == "msg_gpt" and message["content"] == []
    assert message["stop_reason"] == "max_tokens"
