"""The upstream recordings in tests/golden/recordings/ are what their script produces.

``tests/golden/recordings/record.py`` records them from the fake SAP AI Core; this test runs it
again and compares byte for byte (regenerate with ``.venv/bin/python -m
tests.golden.recordings.record`` and review the diff). It also checks that each recording still
shows what it is kept for, so a regenerated file that lost its point fails too.
"""

from __future__ import annotations

import json

import pytest

from app.wire.sse import SSEDecoder
from tests.golden.recordings.record import CASES, RECORDINGS, record

REGENERATE = "regenerate with `.venv/bin/python -m tests.golden.recordings.record` and review the diff"


@pytest.fixture(scope="module")
def produced() -> dict[str, bytes]:
    return record()


def events(name: str) -> list[str]:
    """The data of every event of a recorded stream, through the gateway's SSE decoder."""
    raw = (RECORDINGS / name).read_bytes()
    decoder = SSEDecoder()
    decoded = decoder.feed(raw) + decoder.flush()
    assert decoded and all(e.event is None for e in decoded)  # data-only events
    return [e.data for e in decoded]


def test_recordings_are_what_the_script_produces(produced):
    on_disk = {p.name: p.read_bytes() for p in RECORDINGS.iterdir() if p.suffix in (".sse", ".json")}
    assert sorted(produced) == sorted(on_disk), REGENERATE
    for name, data in produced.items():
        assert data == on_disk[name], f"{name} differs from what record.py produces; {REGENERATE}"


def test_the_script_is_deterministic(produced):
    assert record() == produced


def test_index_describes_every_recording():
    index = json.loads((RECORDINGS / "index.json").read_text())
    assert list(index) == [case.name for case in CASES]
    assert index["azure_chat_tools.sse"]["script"]["reply"][1]["name"] == "Read"


def chat_chunks(name: str) -> list:
    data = events(name)
    assert data.count("[DONE]") == 1 and data[-1] == "[DONE]"
    chunks = [json.loads(d) for d in data[:-1]]
    assert chunks[0]["choices"] == [] and chunks[0]["prompt_filter_results"]  # the filter-only first chunk
    return chunks[1:]


def test_azure_recordings():
    text = chat_chunks("azure_chat_text.sse")
    assert text[-1]["choices"] == [] and text[-1]["usage"]["completion_tokens"] > 0
    assert text[-2]["choices"][0]["finish_reason"] == "stop"

    tools = chat_chunks("azure_chat_tools.sse")
    assert tools[-1]["usage"]["prompt_tokens_details"]["cached_tokens"] > 0
    calls = [c["choices"][0]["delta"]["tool_calls"][0] for c in tools if c["choices"]
             and "tool_calls" in c["choices"][0]["delta"]]
    arguments = {0: "", 1: ""}
    for call in calls:
        arguments[call["index"]] += call["function"]["arguments"]
    assert [json.loads(arguments[i]) for i in (0, 1)] == [{"file_path": "/repo/app/main.py"},
                                                          {"command": "ls -la /repo"}]
    assert len(calls) > 6  # two starts, then fragments
    assert tools[-2]["choices"][0]["finish_reason"] == "tool_calls"

    plain = chat_chunks("azure_chat_noneusage.sse")
    assert all(c["choices"] and "usage" not in c for c in plain)
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in plain).startswith("Tool said: ")

    answer = json.loads((RECORDINGS / "azure_chat.json").read_text())
    assert [c["function"]["name"] for c in answer["choices"][0]["message"]["tool_calls"]] == ["Read", "Bash"]


def test_gemini_recordings():
    assert (RECORDINGS / "gemini_text.sse").read_bytes().count(b"\r\n\r\n") == len(events("gemini_text.sse"))
    text = [json.loads(d) for d in events("gemini_text.sse")]
    assert [("finishReason" in e["candidates"][0]) for e in text] == [False] * (len(text) - 1) + [True]
    assert text[-1]["usageMetadata"]["thoughtsTokenCount"] > 0
    assert not any(p.get("thought") for e in text for p in e["candidates"][0]["content"]["parts"])

    tool = [json.loads(d) for d in events("gemini_thoughts_tool.sse")]
    assert tool[0]["candidates"][0]["content"]["parts"][0]["thought"] is True
    last = tool[-1]["candidates"][0]
    assert last["finishReason"] == "STOP"
    assert [p["functionCall"]["name"] for p in last["content"]["parts"]] == ["Read", "Bash"]
    assert "thoughtSignature" in last["content"]["parts"][0] and "thoughtSignature" not in last["content"]["parts"][1]

    answer = json.loads((RECORDINGS / "gemini.json").read_text())
    kinds = [next(k for k in p if k in ("text", "functionCall")) for p in answer["candidates"][0]["content"]["parts"]]
    assert kinds == ["text", "text", "functionCall", "functionCall"]


def test_embeddings_recording():
    answer = json.loads((RECORDINGS / "embeddings.json").read_text())
    assert [len(d["embedding"]) for d in answer["data"]] == [8, 8]
    assert answer["usage"]["prompt_tokens"] == answer["usage"]["total_tokens"] > 0
