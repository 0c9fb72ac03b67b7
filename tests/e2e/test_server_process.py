"""The real server process: ``gunicorn -c gunicorn.conf.py wsgi:app`` as hosts start it.

* ``--print-config`` shows the settings gunicorn really resolves from ``gunicorn.conf.py``,
  the environment and ``GUNICORN_CMD_ARGS`` (bind, worker class, workers, graceful timeout);
* a broken configuration stops the master at once with one clear line (the ``on_starting``
  hook), no traceback and no workers booted;
* the Procfile ``web:`` line with ``PORT`` and the SAP SDK variables only (no config file)
  serves ``/v1/models`` and ``/v1/messages`` against the fake SAP AI Core.

Every child gets its own ``HOME`` (gunicorn 27 puts a control socket under
``~/.gunicorn``) and a scrubbed environment; every wait is bounded.
"""

from __future__ import annotations

import ast
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.e2e.conftest import HAIKU, ROOT, SONNET, free_port

pytestmark = pytest.mark.e2e

GUNICORN = [sys.executable, "-m", "gunicorn"]
SERVE_ARGS = ["-c", "gunicorn.conf.py", "wsgi:app"]
# Variables of the caller's shell that would change what the server resolves.
SCRUB = ("PORT", "GUNICORN_CMD_ARGS", "WEB_CONCURRENCY", "GATEWAY_BIND", "CONFIG_PATH",
         "GRACEFUL_TIMEOUT", "XDG_RUNTIME_DIR", "TOKEN_USAGE_LOG", "LOG_LEVEL")
# Enough for create_app() (no I/O at import), which --print-config runs in the master.
DUMMY_SAP_ENV = {"AICORE_CLIENT_ID": "id", "AICORE_CLIENT_SECRET": "secret",
                 "AICORE_AUTH_URL": "http://127.0.0.1:9/auth", "AICORE_BASE_URL": "http://127.0.0.1:9",
                 "GATEWAY_CLIENT_KEYS": "k"}
CLIENT_KEY = "procfile-client-key"


def child_env(home: Path, **extra: str) -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in SCRUB and not k.startswith(("AICORE_", "GATEWAY_"))}
    env["HOME"] = str(home)
    env.update(extra)
    return env


def print_config(home: Path, **extra: str) -> dict:
    proc = subprocess.run(GUNICORN + ["--print-config"] + SERVE_ARGS, cwd=ROOT, timeout=20,
                          env=child_env(home, **DUMMY_SAP_ENV, **extra), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    settings = {}
    for line in proc.stdout.splitlines():
        name, sep, value = line.partition(" = ")
        if sep:
            settings[name.strip()] = value.strip()
    return settings


# ----------------------------------------------------------------------------- resolved settings


@pytest.mark.parametrize("extra, bind", [
    ({}, ["127.0.0.1:3001"]),
    ({"PORT": "5055"}, ["0.0.0.0:5055"]),
    ({"PORT": "5055", "GUNICORN_CMD_ARGS": "--bind 127.0.0.1:4555"}, ["127.0.0.1:4555"]),
], ids=["default", "PORT", "GUNICORN_CMD_ARGS"])
def test_print_config_bind(tmp_path, extra, bind):
    assert ast.literal_eval(print_config(tmp_path, **extra)["bind"]) == bind


def test_print_config_workers_and_timeouts(tmp_path):
    default = print_config(tmp_path)
    assert default["worker_class"] == "gevent"
    assert int(default["workers"]) == max(2, os.cpu_count() or 1)
    assert int(default["graceful_timeout"]) >= 600
    assert default["preload_app"] == "False"
    assert int(print_config(tmp_path, WEB_CONCURRENCY="3")["workers"]) == 3


# ----------------------------------------------------------------------------- broken configuration


def _broken(tmp_path: Path) -> dict:
    key = {"clientid": "a", "clientsecret": "b", "url": "http://127.0.0.1:9/auth",
           "serviceurls": {"AI_API_URL": "http://127.0.0.1:9"}}
    bad = tmp_path / "bad.json"
    bad.write_text('{"subAccounts": ')
    nokeys = tmp_path / "nokeys.json"
    nokeys.write_text(json.dumps({"subAccounts": {"s": {"service_key_json": key}}}))
    badport = tmp_path / "badport.json"
    badport.write_text(json.dumps({"subAccounts": {"s": {"service_key_json": key}},
                                   "secret_authentication_tokens": ["k"], "port": "x"}))
    return {
        "missing": ({"CONFIG_PATH": str(tmp_path / "missing.json")}, [str(tmp_path / "missing.json"), "CONFIG_PATH"]),
        "bad_json": ({"CONFIG_PATH": str(bad)}, [str(bad), "invalid JSON"]),
        "no_client_keys": ({"CONFIG_PATH": str(nokeys)}, [str(nokeys), "secret_authentication_tokens"]),
        "bad_field": ({"CONFIG_PATH": str(badport)}, [str(badport), "'port'"]),
        "env_no_client_keys": ({k: v for k, v in DUMMY_SAP_ENV.items() if k != "GATEWAY_CLIENT_KEYS"},
                               ["environment", "GATEWAY_CLIENT_KEYS"]),
    }


@pytest.mark.parametrize("case", ["missing", "bad_json", "no_client_keys", "bad_field", "env_no_client_keys"])
def test_broken_configuration_stops_startup_with_one_line(tmp_path, case):
    env, expected = _broken(tmp_path)[case]
    started = time.monotonic()
    proc = subprocess.run(GUNICORN + SERVE_ARGS, cwd=ROOT, timeout=10, capture_output=True, text=True,
                          env=child_env(tmp_path, GATEWAY_BIND=f"127.0.0.1:{free_port()}", **env))
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, output
    assert time.monotonic() - started < 10
    errors = [line for line in output.splitlines() if "configuration error" in line]
    assert len(errors) == 1, output
    assert all(part in errors[0] for part in expected), errors[0]
    assert "Traceback" not in output
    assert "Booting worker" not in output and "Worker failed to boot" not in output


# ----------------------------------------------------------------------------- the Procfile line


def procfile_web_command() -> list[str]:
    lines = (ROOT / "Procfile").read_text().splitlines()
    web = [line.split(":", 1)[1] for line in lines if line.startswith("web:")]
    assert len(web) == 1, lines
    argv = shlex.split(web[0])
    assert argv[0] == "gunicorn", argv
    return GUNICORN + argv[1:]  # the venv's gunicorn, whatever is on PATH


def test_procfile_web_line_from_environment_only(fake, tmp_path):
    if (ROOT / "config.json").exists():
        pytest.skip("./config.json exists and would win over the environment")
    key = fake.service_key()
    port = free_port()
    env = child_env(tmp_path, PORT=str(port), WEB_CONCURRENCY="2",
                    AICORE_CLIENT_ID=key["clientid"], AICORE_CLIENT_SECRET=key["clientsecret"],
                    AICORE_AUTH_URL=key["url"], AICORE_BASE_URL=key["serviceurls"]["AI_API_URL"],
                    GATEWAY_CLIENT_KEYS=CLIENT_KEY)
    log_path = tmp_path / "server.log"
    url = f"http://127.0.0.1:{port}"  # it listens on 0.0.0.0; talk to it on loopback only
    # Connection: close -- on SIGTERM a gevent worker waits for idle keep-alive
    # connections (up to `keepalive`), and a live response object keeps one open.
    headers = {"x-api-key": CLIENT_KEY, "anthropic-version": "2023-06-01", "Connection": "close"}
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(procfile_web_command(), cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            models = _wait_for_models(proc, url, headers, log_path, timeout=10)
            assert {m["id"] for m in models} == {"claude-sonnet-4-5", "claude-haiku-4-5"}
            assert {m["sap_model"] for m in models} == {SONNET, HAIKU}
            assert requests.get(url + "/v1/models", headers={"Connection": "close"}, timeout=5).status_code == 401

            resp = requests.post(url + "/v1/messages", headers=headers, timeout=10, json={
                "model": "claude-sonnet-4-5", "max_tokens": 100,
                "messages": [{"role": "user", "content": "say hello"}]})
            assert resp.status_code == 200, resp.text
            message = resp.json()
            assert message["type"] == "message" and message["model"] == "claude-sonnet-4-5"
            assert "Hello from the fake SAP AI Core" in message["content"][0]["text"]
            invoke = [r for r in fake.requests if r.deployment_id == "d-sonnet"]
            assert invoke and invoke[-1].headers["ai-resource-group"] == "default"
        finally:
            _stop(proc)
    assert proc.returncode == 0, log_path.read_text(errors="replace")  # a clean, prompt SIGTERM exit
    output = log_path.read_text(errors="replace")
    assert f"Listening at: http://0.0.0.0:{port}" in output, output
    assert "Traceback" not in output, output


def _wait_for_models(proc, url: str, headers: dict, log_path: Path, timeout: float) -> list:
    """Poll until the workers answer /v1/models with discovered models (bounded)."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail("gunicorn exited:\n" + log_path.read_text(errors="replace"))
        try:
            last = requests.get(url + "/v1/models", headers=headers, timeout=2)
            if last.status_code == 200 and last.json()["data"]:
                return last.json()["data"]
        except requests.RequestException as exc:
            last = exc
        time.sleep(0.1)
    pytest.fail(f"no models after {timeout} s (last: {last!r}):\n" + log_path.read_text(errors="replace"))


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
