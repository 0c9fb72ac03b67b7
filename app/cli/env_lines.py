"""The Claude Code environment lines for this gateway, chosen from the deployed models.

``ANTHROPIC_MODEL`` is the newest deployed sonnet (else opus, else haiku, else the first
GPT or Gemini chat model, which Claude Code can use through the gateway too); each
``ANTHROPIC_DEFAULT_<FAMILY>_MODEL`` is the newest deployment of that family, or the
main model standing in (with a comment) when the family is not deployed, so no
Claude Code tier asks for a model the gateway would answer with 404. Values are SAP
model names (spec ``claude-code.md`` §5) and shell-quoted. Pure: no I/O.
"""

from __future__ import annotations

import shlex
from typing import Collection

from app.model_names import family_of, newest_of_family

KEY_PLACEHOLDER = "<one of your gateway keys>"
MAIN_PREFERENCE = ("sonnet", "opus", "haiku")
TIERS = ("sonnet", "opus", "haiku")


def claude_code_env(base_url: str, models: Collection[str], key: str | None = None) -> list[str]:
    """``export`` lines (and ``#`` comments) to paste into a shell before ``claude``.

    ``key`` is printed only when given (the local demo's throwaway key); otherwise a
    placeholder stands in for the operator's real client key.
    """
    newest = {family: newest_of_family(family, models) for family in TIERS}
    main = next((newest[f] for f in MAIN_PREFERENCE if newest[f]), None)
    if main is None:
        main = next((m for m in sorted(models)
                     if family_of(m) in ("gpt", "gemini") and "embedding" not in m), None)
    if main is None:
        return ["# no chat model is deployed: there is nothing for Claude Code to use"]
    lines = [_export("ANTHROPIC_BASE_URL", base_url.rstrip("/")),
             _export("ANTHROPIC_AUTH_TOKEN", key if key else KEY_PLACEHOLDER),
             _export("ANTHROPIC_MODEL", main)]
    for family in TIERS:
        if newest[family] is None:
            lines.append(f"# no {family} deployment: {main} stands in for it")
        lines.append(_export(f"ANTHROPIC_DEFAULT_{family.upper()}_MODEL", newest[family] or main))
    lines.append(_export("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1"))
    return lines


def _export(name: str, value: str) -> str:
    return f"export {name}={shlex.quote(value)}"

