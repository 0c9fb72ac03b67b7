"""message_from_gemini beyond the golden files: the finishReason table (§9.4), usage
arithmetic (clients-and-pain-points.md §2.4), block merging, ids and error bodies."""

from __future__ import annotations

import pytest

from app.translate.gemini import (
    FunctionNames,
    GeminiResponseError,
    message_from_gemini,
    signature_from_tool_id,
    stop_reason_for,
    usage_from_gemini,
)
from app.translate.gemini.response import (
    REFUSAL_FINISH_REASONS,
    UNEXPECTED_FINISH_REASONS,
    message_id_for,
)

MODEL = "claude-sonnet-4-5"


def answer(parts, finish="STOP", **extra):
    return {"candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": finish}],
            "responseId": "r1", **extra}


@pytest.mark.parametrize("finish, tool_use, expected", [
    ("STOP", False, "end_turn"),
    ("STOP", True, "tool_use"),
    ("MAX_TOKENS", False, "max_tokens"),
    ("MAX_TOKENS", True, "max_tokens"),
    *[(r, False, "refusal") for r in sorted(REFUSAL_FINISH_REASONS)],
    *[(r, True, "end_turn") for r in sorted(UNEXPECTED_FINISH_REASONS)],
    ("SOMETHING_NEW", False, "end_turn"),
    (None, False, "end_turn"),
])
def test_stop_reasons(finish, tool_use, expected):
    assert stop_reason_for(finish, tool_use=tool_use) == expected


def test_section_9_4_lists_are_complete():
    assert REFUSAL_FINISH_REASONS == {"SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII",
                                      "IMAGE_SAFETY", "MODEL_ARMOR"}
    assert UNEXPECTED_FINISH_REASONS == {"MALFORMED_FUNCTION_CALL", "UNEXPECTED_TOOL_CALL", "OTHER",
                                         "FINISH_REASON_UNSPECIFIED", "LANGUAGE"}


@pytest.mark.parametrize("meta, expected", [
    ({"promptTokenCount": 100, "candidatesTokenCount": 7, "thoughtsTokenCount": 30, "cachedContentTokenCount": 60},
     (40, 37, 0, 60)),
    ({"promptTokenCount": 8}, (8, 0, 0, 0)),
    ({}, (0, 0, 0, 0)),
    (None, (0, 0, 0, 0)),
    ({"promptTokenCount": 5, "cachedContentTokenCount": 9}, (0, 0, 0, 9)),
    ({"promptTokenCount": "8", "candidatesTokenCount": True, "thoughtsTokenCount": -3}, (0, 0, 0, 0)),
])
def test_usage(meta, expected):
    usage = usage_from_gemini(meta)
    assert list(usage) == ["input_tokens", "output_tokens", "cache_creation_input_tokens",
                           "cache_read_input_tokens"]
    assert tuple(usage.values()) == expected


def test_runs_of_parts_merge_and_calls_split_them():
    message = message_from_gemini(answer([
        {"text": "a", "thought": True}, {"text": "b", "thought": True, "thoughtSignature": "s1"},
        {"text": "c"}, {"text": ""}, {"inlineData": {"mimeType": "image/png", "data": "x"}}, {"text": "d"},
        {"functionCall": {"name": "F", "args": {"x": 1}}},
        {"text": "e"}, {"text": "f", "thought": True}]), model=MODEL)
    assert message["content"][:2] == [{"type": "thinking", "thinking": "ab", "signature": "s1"},
                                      {"type": "text", "text": "cd"}]
    assert message["content"][2]["type"] == "tool_use" and message["content"][2]["input"] == {"x": 1}
    assert message["content"][3:] == [{"type": "text", "text": "e"},
                                      {"type": "thinking", "thinking": "f", "signature": ""}]
    assert message["stop_reason"] == "tool_use"


def test_tool_ids_carry_the_call_signature_and_names_map_back():
    names = FunctionNames(["get weather"])
    message = message_from_gemini(answer([
        {"functionCall": {"name": "get_weather", "args": {"city": "W"}}, "thoughtSignature": "c2lnbmF0dXJl"},
        {"functionCall": {"name": "other", "args": "not an object"}}]), model=MODEL, names=names)
    first, second = message["content"]
    assert first["name"] == "get weather" and signature_from_tool_id(first["id"]) == "c2lnbmF0dXJl"
    assert second["name"] == "other" and second["input"] == {} and signature_from_tool_id(second["id"]) is None
    assert first["id"] != second["id"]


def test_message_ids():
    assert message_id_for({"responseId": "Hq1v-aNm/XL5=="}) == "msg_gm_Hq1vaNmXL5"
    random_ids = {message_id_for({}) for _ in range(3)}
    assert len(random_ids) == 3 and all(i.startswith("msg_gm_") for i in random_ids)
    assert message_from_gemini(answer([{"text": "x"}]), model=MODEL, message_id="msg_gm_given")["id"] == "msg_gm_given"


def test_only_the_first_candidate_counts():
    resp = answer([{"text": "first"}])
    resp["candidates"].append({"content": {"parts": [{"text": "second"}]}, "finishReason": "MAX_TOKENS"})
    message = message_from_gemini(resp, model=MODEL)
    assert message["content"] == [{"type": "text", "text": "first"}] and message["stop_reason"] == "end_turn"


def test_no_candidates_without_block_reason_is_an_empty_end_turn():
    message = message_from_gemini({"usageMetadata": {"promptTokenCount": 3}}, model=MODEL)
    assert message["content"] == [] and message["stop_reason"] == "end_turn"
    assert message["usage"]["input_tokens"] == 3


@pytest.mark.parametrize("body, text", [
    ({"error": {"code": 400, "message": "Request contains an invalid argument.", "status": "INVALID_ARGUMENT"}},
     "Request contains an invalid argument."),
    ({"error": "boom"}, "boom"),
    ([{"candidates": []}], "not a JSON object"),
])
def test_error_bodies(body, text):
    with pytest.raises(GeminiResponseError, match=text):
        message_from_gemini(body, model=MODEL)
