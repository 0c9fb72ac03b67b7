"""End to end: the official anthropic SDK -> gunicorn+gevent gateway -> fake SAP AI Core."""

from __future__ import annotations

import json
import time

import anthropic
import pytest
import requests

from tests.e2e.conftest import GATEWAY_KEY
from app.simulator import Step

pytestmark = pytest.mark.e2e

BASH_TOOL = {"name": "Bash", "description": "Run a shell command",
             "input_schema": {"type": "object", "properties": {"command": {"type": "string"}},
                              "required": ["command"]}}


@pytest.fixture
def client(gateway):
    return anthropic.Anthropic(base_url=gateway.url, api_key=GATEWAY_KEY, max_retries=0)


def test_plain_message(client):
    message = client.messages.create(model="claude-sonnet-4-5-20250929", max_tokens=200,
                                     messages=[{"role": "user", "content": "say hello"}])
    assert message.model == "claude-sonnet-4-5-20250929"
    assert "Hello from the fake SAP AI Core" in message.content[0].text
    assert message.stop_reason == "end_turn"
    assert message.usage.input_tokens > 0


def test_stream(client):
    with client.messages.stream(model="anthropic--claude-4.5-sonnet", max_tokens=200,
                                messages=[{"role": "user", "content": "say hello"}]) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert "Hello from the fake SAP AI Core" in text
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens > 0 and final.usage.input_tokens > 0


def test_tool_use_round_trip(client):
    messages = [{"role": "user", "content": "please run ls in the shell"}]
    first = client.messages.create(model="claude-sonnet-4-5", max_tokens=500, tools=[BASH_TOOL],
                                   messages=messages)
    assert first.stop_reason == "tool_use"
    tool_use = next(b for b in first.content if b.type == "tool_use")
    assert tool_use.name == "Bash" and "command" in tool_use.input
    messages += [{"role": "assistant", "content": [b.model_dump() for b in first.content]},
                 {"role": "user", "content": [{"type": "tool_result", "tool_use_id": tool_use.id,
                                               "content": "file-a\nfile-b"}]}]
    with client.messages.stream(model="claude-sonnet-4-5", max_tokens=500, tools=[BASH_TOOL],
                                messages=messages) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "end_turn"
    assert "file-a" in final.content[0].text


def test_count_tokens(client):
    result = client.messages.count_tokens(model="claude-sonnet-4-5",
                                          messages=[{"role": "user", "content": "hello " * 100}])
    assert 80 <= result.input_tokens <= 250


def test_model_list(client):
    ids = [m.id for m in client.models.list()]
    assert "claude-sonnet-4-5" in ids and "claude-haiku-4-5" in ids


def test_rate_limit_surfaces_as_rate_limit_error(client, fake):
    for _ in range(4):  # whichever worker and however the SDK retries
        fake.script("d-haiku", Step(status=429, retry_after=3))
    with pytest.raises(anthropic.RateLimitError) as info:
        client.messages.create(model="claude-haiku-4-5-20251001", max_tokens=50,
                               messages=[{"role": "user", "content": "hi"}])
    assert info.value.response.headers["retry-after"] == "3"
    assert info.value.body["error"]["type"] == "rate_limit_error"
    fake.reset()


def test_events_are_forwarded_before_upstream_finishes(gateway, fake):
    fake.script("d-sonnet", Step(gap_after_event=(3, 2.5)))
    started = time.monotonic()
    arrivals = []
    with requests.post(gateway.url + "/v1/messages", stream=True, timeout=30,
                       headers={"x-api-key": GATEWAY_KEY},
                       json={"model": "claude-sonnet-4-5", "max_tokens": 100, "stream": True,
                             "messages": [{"role": "user", "content": "hi"}]}) as resp:
        for line in resp.iter_lines():
            if line.startswith(b"event: "):
                arrivals.append((line[7:].decode(), time.monotonic() - started))
    names = [name for name, _ in arrivals]
    assert names[0] == "message_start" and names[-1] == "message_stop"
    assert "ping" in names  # ping_interval is 1 s in this config, the gap 2.5 s
    first_delta = next(t for n, t in arrivals if n == "content_block_delta")
    assert first_delta < 1.5 and arrivals[-1][1] > 2.4
    fake.reset()


def test_client_disconnect_closes_upstream(gateway, fake):
    fake.reset()
    # The gateway notices the disconnect on its second write (pings every 1 s), closes
    # the upstream, and the fake sees that on its next event, after the 3.5 s gap; had the
    # gateway kept reading, the fake's stream would have finished normally.
    fake.script("d-sonnet", Step(gap_after_event=(2, 3.5)))
    with requests.post(gateway.url + "/v1/messages", stream=True, timeout=30,
                       headers={"x-api-key": GATEWAY_KEY},
                       json={"model": "claude-sonnet-4-5", "max_tokens": 100, "stream": True,
                             "messages": [{"role": "user", "content": "hi"}]}) as resp:
        next(resp.iter_content(chunk_size=None))
    deadline = time.monotonic() + 6
    while fake.closed_streams == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert fake.closed_streams == 1


def test_one_usage_line_per_request_and_no_secrets_in_logs(gateway, client, fake):
    client.messages.create(model="claude-sonnet-4-5", max_tokens=50,
                           messages=[{"role": "user", "content": "hi"}])
    time.sleep(0.2)
    lines = [json.loads(l) for l in gateway.usage_path.read_text().splitlines()]
    assert lines and lines[-1]["key"] == "e2e" and lines[-1]["input_tokens"] > 0
    everything = gateway.output() + gateway.usage_path.read_text()
    assert "sap_model=anthropic--claude-4.5-sonnet" in everything
    for secret in (GATEWAY_KEY, fake.client_secret, "tok-1", "tok-2"):
        assert secret not in everything


def test_a_client_hanging_up_during_a_silence_is_noticed_at_once(gateway, fake):
    """No write fails while the upstream is silent (pings every 1 s here, none for the first
    second): the gateway watches the client's socket, cuts the upstream and writes its line."""
    fake.reset()
    fake.script("d-sonnet", Step(gap_after_event=(2, 5.0)))
    with requests.post(gateway.url + "/v1/messages", stream=True, timeout=30,
                       headers={"x-api-key": GATEWAY_KEY, "X-Request-Id": "hangup-probe-1"},
                       json={"model": "claude-sonnet-4-5", "max_tokens": 100, "stream": True,
                             "messages": [{"role": "user", "content": "hi"}]}) as resp:
        chunks = resp.iter_content(chunk_size=None)  # kept: a dropped one closes at once
        next(chunks)
        time.sleep(0.3)  # inside the upstream's silence
        assert not any("hangup-probe-1" in l for l in gateway.output().splitlines())
        hung_up = time.monotonic()
    deadline = hung_up + 5
    line = None
    while line is None and time.monotonic() < deadline:
        line = next((l for l in gateway.output().splitlines() if "hangup-probe-1" in l), None)
        time.sleep(0.02)
    assert line is not None and time.monotonic() - hung_up < 0.9, line
    assert "error=client_gone" in line
