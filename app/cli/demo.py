"""``python -m app demo``: the real gateway on a simulated SAP AI Core, no SAP account needed.

It starts the simulator (:class:`app.simulator.FakeAICore`, in this process, on a
free loopback port) with a sonnet and a haiku deployment, writes a throwaway
configuration (the simulator's service key and a generated client key) into a
temporary directory, starts ``gunicorn -c gunicorn.conf.py wsgi:app`` bound to
loopback, waits until ``/ready`` answers 200 and prints the Claude Code environment
lines, key included: it only opens a local demo. On Ctrl-C or SIGTERM it stops
gunicorn (SIGTERM, then SIGKILL after a bounded wait) and the simulator, and removes
the directory. gunicorn's output goes to ``gateway.log`` in that directory; its last
lines are printed if it fails.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import TextIO

import requests

from app.cli.env_lines import claude_code_env
from app.simulator import FakeAICore

ROOT = Path(__file__).resolve().parents[2]  # where gunicorn.conf.py and wsgi.py are
DEMO_MODELS = ("anthropic--claude-4.5-sonnet", "anthropic--claude-4.5-haiku")
# also served, to try Claude Code (ANTHROPIC_MODEL) or OpenAI clients on other families
OTHER_DEMO_MODELS = ("gpt-5.4", "gemini-2.5-pro")
READY_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0
# Variables of the caller's shell that would move the demo off loopback or mix in real keys.
SCRUB = ("PORT", "GUNICORN_CMD_ARGS", "GATEWAY_BIND", "CONFIG_PATH", "TOKEN_USAGE_LOG",
         "GATEWAY_CLIENT_KEYS", "GATEWAY_ALLOW_UNAUTHENTICATED", "GATEWAY_TRUSTED_PROXIES")


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "demo", help="run the gateway on a simulated SAP AI Core (no SAP account)",
        description="Start a simulated SAP AI Core and the gateway (real gunicorn) on "
                    "loopback and print the Claude Code environment lines. Ctrl-C stops both.")
    parser.add_argument("--port", type=int, default=0,
                        help="gateway port on 127.0.0.1 (default: a free one)")
    parser.set_defaults(run=run)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_config(workdir: Path, fake: FakeAICore, client_key: str) -> Path:
    key_path = workdir / "demo-service-key.json"
    key_path.write_text(json.dumps(fake.service_key(), indent=2))
    config = {"subAccounts": {"demo": {"resource_group": "default",
                                       "service_key_json": key_path.name}},
              "secret_authentication_tokens": [{"key": client_key, "label": "demo"}],
              "token_usage_log": str(workdir / "token_usage.log")}
    path = workdir / "config.json"
    path.write_text(json.dumps(config, indent=2))
    return path


def start_gateway(config: Path, port: int, log: TextIO) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k not in SCRUB}
    env.update({"CONFIG_PATH": str(config), "GATEWAY_BIND": f"127.0.0.1:{port}",
                "TOKEN_USAGE_LOG": str(config.parent / "token_usage.log"),
                "WEB_CONCURRENCY": os.environ.get("WEB_CONCURRENCY", "1"),
                "GRACEFUL_TIMEOUT": "5", "KEEPALIVE": "2"})
    return subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py",
                             "wsgi:app"], cwd=ROOT, env=env, stdout=log,
                            stderr=subprocess.STDOUT)


def wait_ready(url: str, proc: subprocess.Popen, stop: threading.Event,
               timeout: float = READY_TIMEOUT) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not stop.is_set():
        if proc.poll() is not None:
            return False
        try:
            with requests.get(url + "/ready", timeout=(1, 2)) as resp:
                if resp.status_code == 200:
                    return True
        except requests.RequestException:
            pass
        stop.wait(0.2)
    return False


def stop_process(proc: subprocess.Popen, timeout: float = STOP_TIMEOUT) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no output)"


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set())
                for sig in (signal.SIGINT, signal.SIGTERM)}
    workdir = Path(tempfile.mkdtemp(prefix="gateway-demo-"))
    fake = FakeAICore()
    proc: subprocess.Popen | None = None
    log_path = workdir / "gateway.log"
    try:
        fake.start("127.0.0.1", 0)
        for model in DEMO_MODELS:  # demo-sonnet, demo-haiku
            fake.add_deployment("demo-" + model.rsplit("-", 1)[-1], model)
        for model in OTHER_DEMO_MODELS:  # demo-gpt, demo-gemini
            fake.add_deployment("demo-" + model.split("-", 1)[0], model)
        client_key = "demo-" + secrets.token_urlsafe(18)
        port = args.port or free_port()
        url = f"http://127.0.0.1:{port}"
        with open(log_path, "w") as log:
            proc = start_gateway(write_config(workdir, fake, client_key), port, log)
        if not wait_ready(url, proc, stop):
            if stop.is_set():
                return 0
            print(f"demo: the gateway did not become ready on {url}; its last output:\n"
                  + tail(log_path), file=sys.stderr)
            return 1
        print(f"Demo gateway ready at {url}, on a simulated SAP AI Core at {fake.base_url}.",
              file=out)
        print(f"Its client key (local demo only): {client_key}", file=out)
        print("Paste into another shell, then run `claude`:\n", file=out)
        print("\n".join(claude_code_env(url, DEMO_MODELS, client_key)), file=out)
        print(f"# Claude Code on another family: export ANTHROPIC_MODEL="
              f"{' or '.join(OTHER_DEMO_MODELS)}", file=out)
        print(f"# OpenAI clients: base URL {url}/v1, API key {client_key}", file=out)
        print(f"\nGateway log: {log_path}. Press Ctrl-C to stop.", file=out, flush=True)
        while not stop.wait(0.5):
            if proc.poll() is not None:
                print("demo: the gateway exited; its last output:\n" + tail(log_path),
                      file=sys.stderr)
                return 1
        return 0
    finally:
        if proc is not None:
            stop_process(proc)
        fake.stop()
        shutil.rmtree(workdir, ignore_errors=True)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        print("demo: stopped", file=out, flush=True)
