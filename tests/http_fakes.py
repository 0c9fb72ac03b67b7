"""`responses`-level fakes of SAP AI Core for route tests (no sockets, no timing).

Timing, streaming and process behaviour use the loopback fake in
``app/simulator.py`` instead.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable

import responses

from app.config import ServiceKey, Settings, Subaccount, key_digest
from tests.paths import CLAUDE_CODE_FIXTURES

AUTH_URL = "https://tenant.authentication.example.test"
TOKEN_URL = AUTH_URL + "/oauth/token"
API_URL = "https://api.ai.example.test"
CLIENT_KEY = "test-client-key-1"
SONNET = "anthropic--claude-4.5-sonnet"
HAIKU = "anthropic--claude-4.5-haiku"
OPUS = "anthropic--claude-4.5-opus"
FIXTURES = CLAUDE_CODE_FIXTURES


def deployment_url(dep_id: str) -> str:
    return f"{API_URL}/v2/inference/deployments/{dep_id}"


def service_key() -> ServiceKey:
    return ServiceKey(client_id="sb-test!b1|aicore!b540", client_secret="s3cr3t-value",
                      token_url=TOKEN_URL, api_url=API_URL, source="test")


def make_settings(tmp_path: Path, models: dict[str, Iterable[str]] | None = None,
                  **overrides) -> Settings:
    if models is None:
        models = {SONNET: ["d-sonnet"], HAIKU: ["d-haiku"]}
    sub = Subaccount(
        name="sub1", service_key=service_key(), resource_group="rg-test",
        deployment_models={m: tuple(deployment_url(d) for d in deps)
                           for m, deps in models.items()},
        discover=False)
    values = dict(subaccounts=(sub,), client_key_digests={key_digest(CLIENT_KEY): "team-a"},
                  token_usage_log=str(tmp_path / "usage.log"), ping_interval=10.0)
    values.update(overrides)
    return Settings(**values)


def register_token(mock: responses.RequestsMock, expires_in: int = 43199) -> None:
    counter = {"n": 0}

    def answer(request):
        counter["n"] += 1
        body = {"access_token": f"tok-{counter['n']}", "token_type": "bearer",
                "expires_in": expires_in, "jti": "abcdef123456"}
        return 200, {}, json.dumps(body)

    mock.add_callback(responses.POST, TOKEN_URL, callback=answer)


def token_calls(mock: responses.RequestsMock) -> int:
    return sum(1 for call in mock.calls if call.request.url.startswith(TOKEN_URL))


def bedrock_message(text: str = "Hello!", stop_reason: str = "end_turn") -> dict:
    return {"id": "msg_bdrk_01", "type": "message", "role": "assistant",
            "model": "claude-sonnet-4-5-20250929",
            "content": [{"type": "text", "text": text}], "stop_reason": stop_reason,
            "stop_sequence": None,
            "usage": {"input_tokens": 12, "output_tokens": 4,
                      "cache_creation_input_tokens": 0, "cache_read_input_tokens": 30}}


def bedrock_stream(text_chunks: Iterable[str] = ("Hel", "lo!")) -> str:
    events = [
        {"type": "message_start", "message": {
            "id": "msg_bdrk_01", "type": "message", "role": "assistant",
            "model": "claude-sonnet-4-5-20250929", "content": [], "stop_reason": None,
            "stop_sequence": None, "usage": {"input_tokens": 12, "output_tokens": 1,
                                             "cache_creation_input_tokens": 0,
                                             "cache_read_input_tokens": 30}}},
        {"type": "content_block_start", "index": 0,
         "content_block": {"type": "text", "text": ""}},
        *({"type": "content_block_delta", "index": 0,
           "delta": {"type": "text_delta", "text": t}} for t in text_chunks),
        {"type": "content_block_stop", "index": 0},
        {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
         "usage": {"output_tokens": 5}},
        {"type": "message_stop", "amazon-bedrock-invocationMetrics": {
            "inputTokenCount": 12, "outputTokenCount": 5, "invocationLatency": 100,
            "firstByteLatency": 50, "cacheReadInputTokenCount": 30,
            "cacheWriteInputTokenCount": 0}},
    ]
    return "".join("data: " + json.dumps(e) + "\n\n" for e in events)


def fixture_requests(name: str, version: str = "2.1.332") -> list[dict]:
    path = FIXTURES / version / name
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def simple_body(model: str = "claude-sonnet-4-5-20250929", **extra) -> dict:
    body = {"model": model, "max_tokens": 256,
            "messages": [{"role": "user", "content": "say hello"}]}
    body.update(extra)
    return body


#: A Bash tool and one turn of a tool loop with it (the ask, the call, the result), for the rules
#: about thinking next to tools; both the sanitizer's and the fake's tests use them.
BASH_TOOL = {"name": "Bash", "input_schema": {"type": "object"}}
BASH_TOOL_LOOP = [{"role": "user", "content": "run ls"},
                  {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1",
                                                     "name": "Bash", "input": {}}]},
                  {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1",
                                                "content": "a.py"}]}]
