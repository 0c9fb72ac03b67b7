"""requirements.txt alone runs the server: every installed package that the gateway and
gunicorn's gevent worker import belongs to a requirement or to what one declares it needs.
(gunicorn's gevent worker imports ``packaging`` without declaring it: the README's first
command failed on a fresh machine until requirements.txt named it.)"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from importlib import metadata

from tests.paths import REPO

IMPORTS = ("import gunicorn.workers.ggevent, gunicorn.app.wsgiapp, json, sys\n"
           "import wsgi\n"
           "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))\n")


# Imported when installed, never needed: the importer falls back to the standard library.
OPTIONAL = {"typing-extensions"}  # msgspec: typing's own get_type_hints/Required otherwise


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def closure(names: set[str]) -> set[str]:
    """``names`` and every distribution they require (no extras), installed ones only."""
    seen: set[str] = set()
    todo = list(names)
    while todo:
        name = canonical(todo.pop())
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        for req in requires:
            if "extra ==" in req.replace('"', "").replace("'", ""):
                continue
            todo.append(re.split(r"[\s;<>=!~\[(]", req, maxsplit=1)[0])
    return seen


def test_the_runtime_imports_need_nothing_beyond_requirements_txt(tmp_path):
    listed = {canonical(re.split(r"[\s;<>=!~\[]", line, maxsplit=1)[0])
              for line in (REPO / "requirements.txt").read_text().splitlines()
              if line.strip() and not line.startswith("#")}
    allowed = closure(listed) | {"pip", "setuptools"} | OPTIONAL  # pip, setuptools: every venv
    config = tmp_path / "config.json"
    key = {"clientid": "id", "clientsecret": "secret", "url": "https://auth.example.test",
           "serviceurls": {"AI_API_URL": "https://api.example.test"}}
    config.write_text(json.dumps({
        "subAccounts": {"sub1": {"service_key_json": key, "deployment_models": {
            "anthropic--claude-4.5-sonnet": ["https://api.example.test/v2/inference/deployments/d1"]}}},
        "secret_authentication_tokens": ["k"], "token_usage_log": str(tmp_path / "usage.log")}))
    done = subprocess.run([sys.executable, "-c", IMPORTS], cwd=REPO, capture_output=True,
                          text=True, timeout=60, env={"CONFIG_PATH": str(config), "PATH": ""})
    assert done.returncode == 0, done.stderr[-2000:]
    owners = metadata.packages_distributions()
    used = {canonical(dist) for module in json.loads(done.stdout.splitlines()[-1])
            for dist in owners.get(module, ())}
    assert used and used <= allowed, f"imported but not required: {sorted(used - allowed)}"
