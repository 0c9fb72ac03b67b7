"""The real server: gunicorn (gevent workers, our gunicorn.conf.py) against the loopback fake."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from app.simulator import FakeAICore

ROOT = Path(__file__).resolve().parents[2]
GATEWAY_KEY = "e2e-client-key"
SONNET = "anthropic--claude-4.5-sonnet"
HAIKU = "anthropic--claude-4.5-haiku"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Gateway:
    """A running ``gunicorn -c gunicorn.conf.py wsgi:app`` and its captured output."""

    def __init__(self, config: dict, workdir: Path, env: dict | None = None,
                 workers: int = 2) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.workdir = workdir
        config_path = workdir / "config.json"
        config_path.write_text(json.dumps(config))
        self.log_path = workdir / "gunicorn.log"
        self.usage_target = workdir / "usage.log"
        full_env = {**os.environ, "CONFIG_PATH": str(config_path),
                    "GATEWAY_BIND": f"127.0.0.1:{self.port}", "WEB_CONCURRENCY": str(workers),
                    "TOKEN_USAGE_LOG": str(self.usage_target), "KEEPALIVE": "2",
                    **(env or {})}
        full_env.pop("PORT", None)
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"],
            cwd=ROOT, env=full_env, stdout=self._log, stderr=subprocess.STDOUT)
        self._wait_healthy()

    def _wait_healthy(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("gunicorn exited:\n" + self.output())
            try:
                if requests.get(self.url + "/health", timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError("gunicorn did not become healthy:\n" + self.output())

    @property
    def usage_path(self) -> Path:
        """The newest usage file (daily rotation writes ``usage.log.<UTC date>``)."""
        dated = sorted(self.workdir.glob("usage.log.????-??-??"))
        return dated[-1] if dated else self.usage_target

    def output(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()


def gateway_config(fake: FakeAICore, workdir: Path, **extra) -> dict:
    (workdir / "sub1-key.json").write_text(json.dumps(fake.service_key()))
    config = {"subAccounts": {"sub1": {"resource_group": "default",
                                       "service_key_json": "sub1-key.json"}},
              "secret_authentication_tokens": [{"key": GATEWAY_KEY, "label": "e2e"}],
              "ping_interval": 1}
    config.update(extra)
    return config


@pytest.fixture(scope="module")
def fake():
    with FakeAICore() as server:
        server.add_deployment("d-sonnet", SONNET)
        server.add_deployment("d-haiku", HAIKU)
        yield server


@pytest.fixture(scope="module")
def gateway(fake, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("gateway")
    server = Gateway(gateway_config(fake, workdir), workdir)
    yield server
    server.stop()
