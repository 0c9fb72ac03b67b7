"""The Dockerfile, checked without Docker (no daemon or base image is available to the tests).

* its ``CMD`` is the Procfile's ``web:`` line (which ``test_procfile.py`` runs), it runs as a
  numeric non-root user, binds all interfaces, installs ``requirements.txt`` and uses the
  Python minor version the suite runs on;
* ``.dockerignore`` lets in what the ``COPY`` lines need and keeps out the venv, git,
  tests and every kind of file that holds secrets;
* its ``HEALTHCHECK`` command, run as is (with this venv's python), exits 0 against the real
  gunicorn through ``GATEWAY_BIND`` or ``PORT``, and 1 when nothing listens.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys

import pytest

from tests.e2e.conftest import ROOT, free_port

pytestmark = pytest.mark.e2e


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n\s*", " ", (ROOT / "Dockerfile").read_text())
    pairs = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, _, args = line.partition(" ")
            pairs.append((name.upper(), args.strip()))
    return pairs


def only(name: str) -> str:
    values = [args for instr, args in instructions() if instr == name]
    assert len(values) == 1, f"expected one {name}, found {values}"
    return values[0]


def test_cmd_is_the_procfile_web_line():
    web = [line.split(":", 1)[1] for line in (ROOT / "Procfile").read_text().splitlines()
           if line.startswith("web:")]
    assert json.loads(only("CMD")) == shlex.split(web[0]) == ["gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"]


def test_runs_as_a_numeric_non_root_user_set_before_cmd():
    names = [instr for instr, _ in instructions()]
    user = only("USER")
    uid = user.split(":")[0]
    assert uid.isdigit() and int(uid) != 0, user
    assert names.index("USER") > max(i for i, n in enumerate(names) if n == "RUN")  # nothing runs as root after
    assert names.index("USER") < names.index("CMD")


def test_image_settings():
    base = only("FROM")
    assert re.fullmatch(rf"python:{sys.version_info.major}\.{sys.version_info.minor}-slim(-\w+)?", base), base
    assert any(instr == "RUN" and "pip install -r requirements.txt" in args for instr, args in instructions())
    env = " ".join(args for instr, args in instructions() if instr == "ENV")
    assert "GATEWAY_BIND=0.0.0.0:3001" in env and "TOKEN_USAGE_LOG=-" in env
    assert only("EXPOSE") == "3001"


# ----------------------------------------------------------------------------- .dockerignore


def _glob_regex(pattern: str) -> re.Pattern:
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        else:
            out += {"*": "[^/]*", "?": "[^/]"}.get(pattern[i], re.escape(pattern[i]))
            i += 1
    return re.compile(out)


def in_build_context(path: str) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parents decides."""
    included = True
    parents = ["/".join(path.split("/")[:n]) for n in range(1, path.count("/") + 2)]
    for raw in (ROOT / ".dockerignore").read_text().splitlines():
        raw = raw.strip()
        if not raw or raw.startswith("#"):
            continue
        negate = raw.startswith("!")
        regex = _glob_regex(raw.lstrip("!").strip("/"))
        if any(regex.fullmatch(p) for p in parents):
            included = negate
    return included


COPIED = ["requirements.txt", "gunicorn.conf.py", "wsgi.py", "app/__init__.py", "app/config.py",
          "app/routes/messages.py", "app/wire/sse.py", "app/simulator.py"]
LEFT_OUT = [".venv/bin/python", ".git/HEAD", "tests/conftest.py", "bench/README.md", "config.json",
            "sub1-key.json", "app/config.json", "deploy/sub1-key.json", "app/__pycache__/config.cpython-311.pyc",
            "logs/token_usage.log", ".env", "tls/gateway.pem"]


@pytest.mark.parametrize("path", COPIED)
def test_what_the_image_needs_is_in_the_build_context(path):
    assert (ROOT / path).exists() and in_build_context(path)


@pytest.mark.parametrize("path", LEFT_OUT)
def test_secrets_venv_and_tests_stay_out_of_the_build_context(path):
    assert not in_build_context(path)


def test_every_copy_source_is_in_the_build_context():
    for instr, args in instructions():
        if instr == "COPY":
            *sources, _dest = args.split()
            for source in sources:
                assert (ROOT / source).exists() and in_build_context(source.rstrip("/")), source


# ----------------------------------------------------------------------------- HEALTHCHECK


def healthcheck(**env: str) -> int:
    args = only("HEALTHCHECK")
    argv = json.loads(args[args.index("CMD ") + 4:])
    assert argv[0] == "python"
    clean = {k: v for k, v in os.environ.items() if k not in ("PORT", "GATEWAY_BIND")}
    return subprocess.run([sys.executable, *argv[1:]], env={**clean, **env}, capture_output=True,
                          timeout=15).returncode


def test_healthcheck_against_the_real_server(gateway):
    dead = f"127.0.0.1:{free_port()}"
    assert healthcheck(GATEWAY_BIND=gateway.url.removeprefix("http://")) == 0
    assert healthcheck(GATEWAY_BIND=dead, PORT=str(gateway.port)) == 0  # PORT wins, as in gunicorn.conf.py
    assert healthcheck(GATEWAY_BIND=dead) == 1
    assert healthcheck(GATEWAY_BIND=gateway.url.removeprefix("http://"), PORT=dead.split(":")[1]) == 1
