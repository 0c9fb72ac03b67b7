"""The Procfile's ``web:`` line run the way Procfile hosts run it: by honcho, from the environment.

honcho (a Python port of foreman) reads ``Procfile``, sets ``PORT`` and runs the ``web:``
line through the shell with stdout and stderr merged into its own stdout, as Heroku-style
hosts do. There is no config file: the SAP side comes from ``AICORE_SERVICE_KEY`` (the fake
SAP AI Core's key), client keys from ``GATEWAY_CLIENT_KEYS``, and ``TOKEN_USAGE_LOG=-``
sends usage to stdout. The test sends a non-streamed and a streamed ``/v1/messages`` with
the Anthropic SDK and finds, in honcho's stdout under ``web.1``, each request's line and
usage record by the ``request-id`` the gateway returned.

gunicorn binds ``0.0.0.0:$PORT`` there, as those hosts expect; the test talks to it on
127.0.0.1 only. honcho and the gateway run in their own process groups, which the
``finally`` block terminates (and kills if they linger). Every wait is bounded.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import anthropic
import pytest
import requests

from tests.e2e.conftest import ROOT, free_port
from tests.e2e.test_server_process import child_env

pytestmark = pytest.mark.e2e

HONCHO = [sys.executable, "-m", "honcho"]
CLIENT_KEY = "honcho-client-key"
WEB_LINE = re.compile(r"\S+ web\.1 +\| ")  # honcho: "21:44:42 web.1  | <line>"
VENV_BIN = str(Path(sys.executable).parent)  # so the Procfile's `gunicorn` is this venv's


def honcho_env(home: Path, fake, port: int) -> dict:
    env = child_env(home, AICORE_SERVICE_KEY=json.dumps(fake.service_key()),
                    GATEWAY_CLIENT_KEYS=CLIENT_KEY, TOKEN_USAGE_LOG="-", WEB_CONCURRENCY="1",
                    PORT=str(port))
    env["PATH"] = VENV_BIN + os.pathsep + env.get("PATH", "")
    return env


def wait_healthy(proc: subprocess.Popen, url: str, output: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail("honcho exited:\n" + output.read_text(errors="replace"))
        try:
            if requests.get(url + "/health", timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    pytest.fail(f"not healthy after {timeout} s:\n" + output.read_text(errors="replace"))


def stop_groups(proc: subprocess.Popen, output: Path) -> None:
    """SIGTERM honcho's group (honcho then stops web.1's); kill whatever is left, bounded."""
    groups = [proc.pid] + [int(pid) for pid in re.findall(
        r"web\.1 started \(pid=(\d+)\)", output.read_text(errors="replace"))]
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            pass
    for group in groups:
        try:
            os.killpg(group, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait(5)


def test_procfile_web_line_under_honcho(fake, tmp_path):
    if (ROOT / "config.json").exists():
        pytest.skip("./config.json exists and would win over the environment")
    port = free_port()
    url = f"http://127.0.0.1:{port}"  # gunicorn listens on 0.0.0.0; talk on loopback only
    empty_env_file = tmp_path / "empty.env"  # not the repository's .env, if someone has one
    empty_env_file.write_text("")
    output = tmp_path / "honcho.out"
    command = HONCHO + ["start", "--no-colour", "-f", str(ROOT / "Procfile"), "-d", str(ROOT),
                        "-e", str(empty_env_file), "-p", str(port), "web"]
    with open(output, "wb") as out:
        proc = subprocess.Popen(command, cwd=ROOT, env=honcho_env(tmp_path, fake, port),
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_healthy(proc, url, output, timeout=20)
        # Connection: close, so no idle keep-alive connection delays gunicorn's SIGTERM exit.
        with anthropic.Anthropic(base_url=url, api_key=CLIENT_KEY, max_retries=0, timeout=20,
                                 default_headers={"Connection": "close"}) as client:
            plain = client.messages.with_raw_response.create(
                model="claude-sonnet-4-5", max_tokens=50,
                messages=[{"role": "user", "content": "say hello"}])
            assert "Hello from the fake SAP AI Core" in plain.parse().content[0].text
            with client.messages.stream(model="claude-sonnet-4-5", max_tokens=50,
                                        messages=[{"role": "user", "content": "hi"}]) as stream:
                text = "".join(stream.text_stream)
                streamed_id = stream.response.headers["request-id"]
            assert "Hello from the fake SAP AI Core" in text
        plain_id = plain.headers["request-id"]
        lines = lines_for(output, [plain_id, streamed_id], timeout=5)
    finally:
        stop_groups(proc, output)
    text = output.read_text(errors="replace")
    assert re.search(rf"web\.1 +\| .*Listening at: http://0\.0\.0\.0:{port}\b", text), text
    for request_id, stream_flag in ((plain_id, "0"), (streamed_id, "1")):
        request_line = [l for l in lines[request_id] if "POST /v1/messages 200" in l]
        assert len(request_line) == 1 and f"stream={stream_flag}" in request_line[0], lines[request_id]
        usage = [json.loads(l.split("| ", 1)[1]) for l in lines[request_id] if '"request_id"' in l]
        assert len(usage) == 1 and usage[0]["output_tokens"] > 0, lines[request_id]
    assert "Traceback" not in text and CLIENT_KEY not in text and fake.client_secret not in text
    assert "Shutting down: Master" in text and "web.1 stopped" in text, text  # a clean stop


def lines_for(output: Path, request_ids: list[str], timeout: float) -> dict[str, list[str]]:
    """honcho's ``web.1`` lines mentioning each request id: its log line and its usage record."""
    deadline = time.monotonic() + timeout
    while True:
        web = [l for l in output.read_text(errors="replace").splitlines() if WEB_LINE.match(l)]
        found = {rid: [l for l in web if rid in l] for rid in request_ids}
        if all(len(v) >= 2 for v in found.values()) or time.monotonic() > deadline:
            return found
        time.sleep(0.1)
