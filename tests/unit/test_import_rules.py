"""The layering of style.md section 4 ("What may import what"), checked with ``ast``."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MODULES = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "app").rglob("*.py"))
WEB = {"flask", "werkzeug"}
PURE = {"app/errors.py": set(), "app/model_names.py": set()}  # stdlib only
# config validates model_profiles with the pure profile builders, which need the family of a name
PURE["app/config.py"] = {"app.translate.family_profiles"}
# orjson, msgspec: a pure encoder and decoder with no I/O (app/wire/jsoncodec.py says why)
PURE.update({m: {"app.wire", "orjson", "msgspec"} for m in MODULES if m.startswith("app/wire/")})
PURE.update({m: {"app.wire", "app.translate", "app.model_names"}
             for m in MODULES if m.startswith("app/translate/")})
NO_WEB = [m for m in MODULES if m.startswith("app/upstream/")] + [
    "app/client_auth.py", "app/runtime.py", "app/claude.py", "app/log.py", "app/forwarding.py",
    "app/backends.py"]


def imports(rel: str, module_level_only: bool = False) -> list[str]:
    """Absolute dotted names imported by a file (relative imports resolved)."""
    tree = ast.parse((ROOT / rel).read_text(encoding="utf-8"))
    package = rel[:-3].replace("/", ".").removesuffix(".__init__").split(".")
    if not rel.endswith("__init__.py"):
        package = package[:-1]
    # module level = everything not inside a top-level def (so also under if/try)
    tops = [t for t in tree.body if not (module_level_only and isinstance(t, (ast.FunctionDef, ast.AsyncFunctionDef)))]
    nodes = [n for t in tops for n in ast.walk(t)]
    out = []
    for node in nodes:
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            mod = ".".join(base + ([node.module] if node.module else []))
            out += [f"{mod}.{a.name}" if not node.module else mod for a in node.names]
    return out


def top(name: str) -> str:
    return name.split(".")[0]


@pytest.mark.parametrize("rel", sorted(PURE))
def test_pure_modules_import_stdlib_and_allowed_siblings_only(rel):
    bad = [n for n in imports(rel) if top(n) not in sys.stdlib_module_names
           and not any(n == p or n.startswith(p + ".") for p in PURE[rel])]
    assert not bad, f"{rel} imports {bad}; allowed: stdlib + {sorted(PURE[rel])}"


@pytest.mark.parametrize("rel", NO_WEB)
def test_no_flask_or_werkzeug_outside_the_web_layer(rel):
    assert not [n for n in imports(rel) if top(n) in WEB]


@pytest.mark.parametrize("rel", MODULES)
def test_no_gevent_in_app_and_a_docstring_everywhere(rel):
    assert not [n for n in imports(rel) if top(n) == "gevent"]
    assert ast.get_docstring(ast.parse((ROOT / rel).read_text(encoding="utf-8"))), f"{rel}: no module docstring"


def test_gunicorn_conf_imports_app_only_inside_hooks():
    assert not [n for n in imports("gunicorn.conf.py", module_level_only=True) if top(n) == "app"]
    assert [n for n in imports("gunicorn.conf.py") if top(n) == "app"]  # the check sees hook imports
