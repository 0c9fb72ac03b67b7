"""``python -m app demo``: the printed lines work with the anthropic SDK, and it stops cleanly.

The demo runs in its own process group (as from a terminal), so whatever happens the
test can end every process it started; every wait is bounded.
"""

from __future__ import annotations

import os
import queue
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time

import anthropic
import pytest

from tests.e2e.conftest import free_port
from tests.paths import REPO

pytestmark = pytest.mark.e2e

START_TIMEOUT = 90.0
STOP_TIMEOUT = 30.0


def parse_exports(lines: list[str]) -> dict[str, str]:
    """What a shell would set from the pasted ``export NAME=value`` lines."""
    found = {}
    for line in lines:
        if line.startswith("export "):
            name, _, value = line[len("export "):].partition("=")
            found[name] = shlex.split(value)[0]
    return found


class Demo:
    def __init__(self, port: int) -> None:
        env = {k: v for k, v in os.environ.items() if k not in ("PORT", "GUNICORN_CMD_ARGS")}
        self.proc = subprocess.Popen([sys.executable, "-m", "app", "demo", "--port", str(port)],
                                     cwd=REPO, env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True,
                                     start_new_session=True)
        self.lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.seen: list[str] = []

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def read_until(self, marker: str, timeout: float) -> list[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                break
            if line is None:
                break
            self.seen.append(line)
            if marker in line:
                return self.seen
        raise AssertionError(f"no '{marker}' from the demo; it printed:\n" + "\n".join(self.seen))

    def kill_group(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(10)


def refuses(url: str) -> bool:
    host, port = url.rsplit("/", 1)[-1].split(":")
    try:
        socket.create_connection((host, int(port)), timeout=2).close()
    except OSError:
        return True
    return False


@pytest.mark.parametrize("how", ["sigterm", "ctrl-c"])
def test_demo_lines_drive_the_sdk_then_it_stops_cleanly(how, monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    port = free_port()
    demo = Demo(port)
    try:
        lines = demo.read_until("Press Ctrl-C to stop", START_TIMEOUT)
        env = parse_exports(lines)
        assert env["ANTHROPIC_BASE_URL"] == f"http://127.0.0.1:{port}"
        assert env["ANTHROPIC_AUTH_TOKEN"].startswith("demo-")
        assert env["ANTHROPIC_MODEL"] == "anthropic--claude-4.5-sonnet"
        assert env["ANTHROPIC_DEFAULT_HAIKU_MODEL"] == "anthropic--claude-4.5-haiku"
        assert env["CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC"] == "1"
        simulator = next(l for l in lines if l.startswith("Demo gateway ready")).split()[-1]
        client = anthropic.Anthropic(base_url=env["ANTHROPIC_BASE_URL"],
                                     auth_token=env["ANTHROPIC_AUTH_TOKEN"], max_retries=0,
                                     timeout=20)
        message = client.messages.create(model=env["ANTHROPIC_MODEL"], max_tokens=100,
                                         messages=[{"role": "user", "content": "say hello"}])
        assert "Hello from the fake SAP AI Core" in message.content[0].text
        with client.messages.stream(model=env["ANTHROPIC_DEFAULT_HAIKU_MODEL"], max_tokens=100,
                                    messages=[{"role": "user", "content": "hi"}]) as stream:
            assert "Hello from the fake SAP AI Core" in "".join(stream.text_stream)
        other = next(l for l in lines if l.startswith("# Claude Code on another family"))
        for model in ("gpt-5.4", "gemini-2.5-pro"):
            assert model in other
            with client.messages.stream(model=model, max_tokens=100,
                                        messages=[{"role": "user", "content": "hi"}]) as stream:
                assert "Hello from the fake SAP AI Core" in "".join(stream.text_stream)

        if how == "sigterm":
            demo.proc.send_signal(signal.SIGTERM)
        else:  # a terminal's Ctrl-C reaches the whole foreground process group
            os.killpg(demo.proc.pid, signal.SIGINT)
        assert demo.proc.wait(STOP_TIMEOUT) == 0
        demo.read_until("demo: stopped", 5)
        assert refuses(env["ANTHROPIC_BASE_URL"]) and refuses(simulator.rstrip("."))
        with pytest.raises(ProcessLookupError):  # gunicorn's master and workers are gone too
            os.killpg(demo.proc.pid, 0)
    finally:
        demo.kill_group()
