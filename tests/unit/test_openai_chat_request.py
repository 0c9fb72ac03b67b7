"""translate_request: what it refuses (each with the field's path) and the rules the golden
files do not spell out one by one."""

from __future__ import annotations

import pytest

from app.translate.openai.chat_request import (DEFAULT_MAX_TOKENS, EFFORT_BUDGETS,
                                               ChatRequestError, translate_request)

USER = {"role": "user", "content": "hi"}


def chat(**fields) -> dict:
    return {"model": "claude-sonnet-4-5", "messages": [USER], **fields}


def call(arguments, call_id="call_1") -> dict:
    return {"role": "assistant", "content": None, "tool_calls": [
        {"id": call_id, "type": "function", "function": {"name": "Bash", "arguments": arguments}}]}


@pytest.mark.parametrize("body, where", [
    ([], "request body"),
    ({"messages": [USER]}, "model"),
    (chat(model=""), "model"),
    (chat(messages=[]), "messages"),
    (chat(messages="hi"), "messages"),
    (chat(messages=[{"role": "system", "content": "only a system prompt"}]), "messages"),
    (chat(messages=["hi"]), "messages.0"),
    (chat(messages=[{"role": "robot", "content": "x"}]), "messages.0.role"),
    (chat(messages=[USER, {"role": "function", "name": "f", "content": "x"}]), "messages.1.role"),
    (chat(messages=[USER, {"role": "assistant", "tool_calls": [{"type": "function"}]}]),
     "messages.1.tool_calls.0"),
    (chat(messages=[USER, {"role": "assistant", "content": "x",
                           "function_call": {"name": "f", "arguments": "{}"}}]),
     "messages.1.function_call"),
    (chat(messages=[USER, call("{}"), {"role": "tool", "content": "out"}]),
     "messages.2.tool_call_id"),
    (chat(messages=[{"role": "user", "content": 5}]), "messages.0.content"),
    (chat(messages=[{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}]),
     "messages.0.content.0.type"),
    (chat(messages=[{"role": "user", "content": [{"type": "text"}]}]), "messages.0.content.0.text"),
    (chat(messages=[{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "ftp://host/cat.png"}}]}]),
     "messages.0.content.0.image_url.url"),
    (chat(messages=[{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "data:image/png,not-base64"}}]}]),
     "messages.0.content.0.image_url.url"),
    (chat(messages=[{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "data:image/tiff;base64,AAAA"}}]}]),
     "messages.0.content.0.image_url.url"),
    (chat(messages=[{"role": "user", "content": [{"type": "file", "file": {"file_id": "f-1"}}]}]),
     "messages.0.content.0.file.file_data"),
    (chat(messages=[{"role": "system", "content": [
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]}, USER]),
     "messages.0.content.0.type"),
    (chat(n=2), "n"),
    (chat(functions=[{"name": "f"}]), "functions"),
    (chat(stream="yes"), "stream"),
    (chat(stream_options=True), "stream_options"),
    (chat(max_tokens=0), "max_tokens"),
    (chat(max_tokens="100"), "max_tokens"),
    (chat(max_completion_tokens=True), "max_completion_tokens"),
    (chat(temperature="hot"), "temperature"),
    (chat(temperature=-0.5), "temperature"),
    (chat(top_p=True), "top_p"),
    (chat(stop=[1]), "stop"),
    (chat(tools={"type": "function"}), "tools"),
    (chat(tools=[{"type": "web_search"}]), "tools.0.type"),
    (chat(tools=[{"type": "function", "function": {"description": "x"}}]), "tools.0.function.name"),
    (chat(tools=[{"type": "function", "function": {"name": "f", "parameters": []}}]),
     "tools.0.function.parameters"),
    (chat(tools=[{"type": "function", "function": {"name": "f"}}], tool_choice="sometimes"),
     "tool_choice"),
    (chat(tools=[{"type": "function", "function": {"name": "f"}}],
          tool_choice={"type": "function"}), "tool_choice"),
    (chat(reasoning_effort="maximum"), "reasoning_effort"),
])
def test_refused_with_the_field_path(body, where):
    with pytest.raises(ChatRequestError) as info:
        translate_request(body)
    assert str(info.value).startswith(where), str(info.value)


@pytest.mark.parametrize("arguments", ['{"command": ', "{not json", "[1, 2]", 42])
def test_history_arguments_that_are_not_an_object_are_kept_wrapped(arguments):
    """e.g. a call cut off by max_tokens, echoed back as streamed: the conversation goes on."""
    body = translate_request(chat(messages=[USER, call(arguments)])).body
    assert body["messages"][1]["content"][0]["input"] == {"arguments": arguments}


def test_arguments_given_as_an_object_or_blank_are_accepted():
    body = translate_request(chat(messages=[USER, call({"command": "ls"}, "c1"),
                                            {"role": "tool", "tool_call_id": "c1", "content": ""},
                                            call("  ", "c2"),
                                            {"role": "tool", "tool_call_id": "c2", "content": ""}]
                                  )).body
    inputs = [b["input"] for m in body["messages"] for b in m["content"] if b["type"] == "tool_use"]
    assert inputs == [{"command": "ls"}, {}]


def test_tool_messages_after_a_user_message_open_a_new_turn():
    """tool results first, then the user's text; a later tool run starts its own turn."""
    body = translate_request(chat(messages=[
        USER, call("{}", "c1"), {"role": "tool", "tool_call_id": "c1", "content": "r1"},
        {"role": "user", "content": "and?"}, call("{}", "c2"),
        {"role": "tool", "tool_call_id": "c2", "content": "r2"}])).body
    roles = [m["role"] for m in body["messages"]]
    assert roles == ["user", "assistant", "user", "assistant", "user"]
    assert [b["type"] for b in body["messages"][2]["content"]] == ["tool_result", "text"]
    assert [b["type"] for b in body["messages"][4]["content"]] == ["tool_result"]


def test_parallel_tool_calls_true_or_absent_changes_nothing():
    tools = [{"type": "function", "function": {"name": "f"}}]
    for extra in ({}, {"parallel_tool_calls": True}):
        assert "tool_choice" not in translate_request(chat(tools=tools, **extra)).body


@pytest.mark.parametrize("effort", sorted(EFFORT_BUDGETS))
def test_reasoning_budget_always_below_max_tokens(effort):
    for client_max in (None, 1025, 2000, 5000, 64000):
        fields = {"reasoning_effort": effort}
        if client_max is not None:
            fields["max_completion_tokens"] = client_max
        body = translate_request(chat(**fields)).body
        if client_max is None:
            assert body["max_tokens"] == DEFAULT_MAX_TOKENS + EFFORT_BUDGETS[effort]
        else:
            assert body["max_tokens"] == client_max  # never raised above the client's limit
        budget = body["thinking"]["budget_tokens"]
        assert 1024 <= budget < body["max_tokens"]
        assert budget <= EFFORT_BUDGETS[effort]
