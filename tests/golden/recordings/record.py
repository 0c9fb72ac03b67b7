"""Upstream recordings made with the fake SAP AI Core (``app/simulator.py``), for adapter tests.

Each file is the exact body one SAP AI Core inference endpoint answered to one request; the
requests (deployment model, URL suffix, query, body, scripted step) are in ``index.json``.

======================== ==========================================================================
azure_chat_text.sse      gpt-5.4 chat stream, ``stream_options.include_usage`` (text answer)
azure_chat_tools.sse     gpt-5.4 stream with two tools: text, then two parallel tool calls whose
                         arguments arrive in fragments; a long system prompt, so usage reports
                         ``cached_tokens``
azure_chat_noneusage.sse a stream without ``include_usage`` (no usage chunk, no ``usage`` keys),
                         answering a tool result ("Tool said: ...")
azure_chat.json          the non-streaming answer to the azure_chat_tools request
gemini_text.sse          gemini-2.5-pro ``:streamGenerateContent?alt=sse`` (text; the model
                         thinks, so ``thoughtsTokenCount``, but no thought parts); CRLF lines
gemini_thoughts_tool.sse ``includeThoughts``: thought parts, text, then two parallel
                         ``functionCall`` parts in one chunk, the first with a ``thoughtSignature``
gemini.json              the non-streaming ``:generateContent`` answer to that request
embeddings.json          text-embedding-3-small, two inputs, ``dimensions: 8``
======================== ==========================================================================

Regenerate (deterministic: a fresh fake, a fixed clock, the requests in a fixed order)::

    .venv/bin/python -m tests.golden.recordings.record

``tests/unit/test_simulator_recordings.py`` fails when the files differ from what
:func:`record` produces, so a change to the fake shows up as a diff here.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import requests

from app.simulator import FakeAICore, Step

RECORDINGS = Path(__file__).resolve().parent
CLOCK = 1767225600  # 2026-01-01T00:00:00Z
API_VERSION = "2025-04-01-preview"
DEPLOYMENTS = {"gpt": "gpt-5.4", "gemini": "gemini-2.5-pro", "embedding": "text-embedding-3-small"}

_LONG_SYSTEM = ("You are a coding assistant working in the user's repository. Prefer small, reviewable "
                "changes and explain what you did in one sentence. ") * 30
_OPENAI_TOOLS = [
    {"type": "function", "function": {"name": "Read", "description": "Read a file",
                                      "parameters": {"type": "object", "properties": {"file_path": {"type": "string"}},
                                                     "required": ["file_path"]}}},
    {"type": "function", "function": {"name": "Bash", "description": "Run a shell command",
                                      "parameters": {"type": "object", "properties": {"command": {"type": "string"}},
                                                     "required": ["command"]}}},
]
_GEMINI_TOOLS = [{"functionDeclarations": [
    {"name": "Read", "description": "Read a file",
     "parameters": {"type": "OBJECT", "properties": {"file_path": {"type": "STRING"}}, "required": ["file_path"]}},
    {"name": "Bash", "description": "Run a shell command",
     "parameters": {"type": "OBJECT", "properties": {"command": {"type": "STRING"}}, "required": ["command"]}},
]}]
_PARALLEL = [
    {"type": "text", "text": "I'll read the file and list the directory."},
    {"type": "tool_use", "name": "Read", "input": {"file_path": "/repo/app/main.py"}},
    {"type": "tool_use", "name": "Bash", "input": {"command": "ls -la /repo"}},
]
_TOOLS_CHAT = {
    "messages": [{"role": "system", "content": _LONG_SYSTEM},
                 {"role": "user", "content": "Show me app/main.py and what else is in the repo."}],
    "tools": _OPENAI_TOOLS, "max_completion_tokens": 4096, "reasoning_effort": "low",
}
_THOUGHTS_TOOL = {
    "systemInstruction": {"parts": [{"text": "You are a coding assistant."}]},
    "contents": [{"role": "user", "parts": [{"text": "Show me app/main.py and what else is in the repo."}]}],
    "tools": _GEMINI_TOOLS,
    "toolConfig": {"functionCallingConfig": {"mode": "AUTO"}},
    "generationConfig": {"maxOutputTokens": 8192, "thinkingConfig": {"includeThoughts": True, "thinkingBudget": -1}},
}


@dataclasses.dataclass
class Case:
    """One recorded request: to which deployment, what it posts, and the scripted step."""

    name: str
    deployment: str
    suffix: str
    body: dict
    query: dict = dataclasses.field(default_factory=dict)
    step: Step | None = None


CASES = [
    Case("azure_chat_text.sse", "gpt", "chat/completions", {
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "say hello"}],
        "max_completion_tokens": 1024, "stream": True, "stream_options": {"include_usage": True}},
        {"api-version": API_VERSION}),
    Case("azure_chat_tools.sse", "gpt", "chat/completions",
         {**_TOOLS_CHAT, "stream": True, "stream_options": {"include_usage": True}}, {"api-version": API_VERSION},
         Step(reply=_PARALLEL)),
    Case("azure_chat_noneusage.sse", "gpt", "chat/completions", {
        "messages": [
            {"role": "user", "content": "run ls"},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "call_k3Yd0fQ2b8WmA1xR7tLp9sZc", "type": "function",
                 "function": {"name": "Bash", "arguments": "{\"command\":\"ls\"}"}}]},
            {"role": "tool", "tool_call_id": "call_k3Yd0fQ2b8WmA1xR7tLp9sZc", "content": "README.md\napp\ntests"}],
        "tools": _OPENAI_TOOLS, "max_completion_tokens": 1024, "stream": True},
        {"api-version": API_VERSION}),
    Case("azure_chat.json", "gpt", "chat/completions", _TOOLS_CHAT, {"api-version": API_VERSION},
         Step(reply=_PARALLEL)),
    Case("gemini_text.sse", "gemini", "models/gemini-2.5-pro:streamGenerateContent", {
        "systemInstruction": {"parts": [{"text": "Be brief."}]},
        "contents": [{"role": "user", "parts": [{"text": "say hello"}]}],
        "generationConfig": {"maxOutputTokens": 1024}},
        {"alt": "sse"}),
    Case("gemini_thoughts_tool.sse", "gemini", "models/gemini-2.5-pro:streamGenerateContent", _THOUGHTS_TOOL,
         {"alt": "sse"}, Step(reply=_PARALLEL)),
    Case("gemini.json", "gemini", "models/gemini-2.5-pro:generateContent", _THOUGHTS_TOOL, {},
         Step(reply=_PARALLEL)),
    Case("embeddings.json", "embedding", "embeddings",
         {"input": ["The quick brown fox", "jumps over the lazy dog"], "dimensions": 8, "encoding_format": "float"},
         {"api-version": "2024-10-21"}),
]


def _step_description(step: Step | None) -> dict | None:
    """The step's non-default fields (what was scripted)."""
    if step is None:
        return None
    default = Step()
    return {f.name: getattr(step, f.name) for f in dataclasses.fields(Step)
            if getattr(step, f.name) != getattr(default, f.name)}


def index() -> bytes:
    """``index.json``: the request behind every recording."""
    entries = {case.name: {"model": DEPLOYMENTS[case.deployment], "suffix": case.suffix, "query": case.query,
                           "body": case.body, "script": _step_description(case.step)} for case in CASES}
    return (json.dumps(entries, indent=2) + "\n").encode()


def record() -> dict[str, bytes]:
    """Run every case against a fresh fake; file name -> the exact answer body (plus index.json)."""
    out: dict[str, bytes] = {}
    with FakeAICore() as fake:
        fake.clock = lambda: CLOCK
        fake.stream_event_count = 4
        for dep_id, model in DEPLOYMENTS.items():
            fake.add_deployment(dep_id, model)
        token = requests.post(fake.base_url + "/auth/oauth/token", auth=(fake.client_id, fake.client_secret),
                              data={"grant_type": "client_credentials"}, timeout=10).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}", "AI-Resource-Group": "default"}
        for case in CASES:
            if case.step is not None:
                fake.script(case.deployment, case.step)
            r = requests.post(f"{fake.deployment_url(case.deployment)}/{case.suffix}", params=case.query,
                              json=case.body, headers=headers, timeout=30)
            if r.status_code != 200:
                raise RuntimeError(f"{case.name}: the fake answered {r.status_code}: {r.text[:500]}")
            out[case.name] = r.content
    out["index.json"] = index()
    return out


def main() -> int:
    for name, data in record().items():
        (RECORDINGS / name).write_bytes(data)
        print(f"wrote {RECORDINGS / name} ({len(data)} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
