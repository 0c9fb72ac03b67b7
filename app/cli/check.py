"""``python -m app check``: is this configuration ready to serve? Asks SAP AI Core.

Steps, with the server's own code at each one:

1. load the configuration with the server's loader (a mistake prints its one line);
2. fetch a token per subaccount (``TokenProvider``);
3. list the deployments it would serve: configured URLs plus one synchronous
   discovery (``DeploymentRegistry.refresh``), with the client model ids that reach
   each SAP model (``model_names.resolve``);
4. probe each deployment with a one-token, non-streaming call through the path a client
   request takes (:func:`app.backends.open_pivot`: for Claude the sanitizer, upstream
   client, 401 re-auth and self-healing; for GPT and Gemini their translation; an
   embeddings model gets one input) on a view of the runtime that holds only that
   deployment, so each one is tried exactly once and none can stand in for another;
5. print a table, the Claude Code environment lines, and exit 1 on any failure.

The probes write no usage log and count against no budget. Nothing printed holds
a client key, a client secret or a token.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import logging
import os
import sys
import time
from dataclasses import dataclass
from typing import Collection, Mapping


from app.backends import StaticPlan, open_pivot
from app.cli.env_lines import claude_code_env
from app.config import ConfigError, Settings, load_settings
from app.errors import GatewayError
from app.forwarding import Exchange, open_exchange, read_json
from app.model_names import family_of, newest_of_family, parse_claude, resolve
from app.runtime import Runtime
from app.translate.gpt.request import api_path
from app.translate.sanitize import SanitizeError
from app.upstream.balancer import Balancer
from app.upstream.deployments import Target
from app.wire.jsoncodec import dumps

PROBE_PROMPT = "Reply with one word."
WILDCARD_HOSTS = ("", "0.0.0.0", "::", "[::]")


@dataclass
class Report:
    rows: list["Row"]
    client_ids: dict[str, list[str]]
    env_lines: list[str]


@dataclass
class Row:
    subaccount: str
    model: str
    deployment: str
    token: str
    probe: str
    ok: bool


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "check", help="validate the configuration against SAP AI Core",
        description="Validate the configuration, fetch a token per subaccount, list the "
                    "deployments the gateway would serve, send a one-token probe to each "
                    "and print the Claude Code environment lines. Exit status 1 on any "
                    "failure.")
    parser.add_argument("--config", metavar="PATH",
                        help="configuration file (default: $CONFIG_PATH, else ./config.json)")
    parser.add_argument("--base-url", metavar="URL",
                        help="the gateway's URL as clients reach it (default: from "
                             "$GATEWAY_BIND, else the config's host and port)")
    parser.add_argument("--timeout", type=float, default=60.0, metavar="SECONDS",
                        help="longest wait for one probe's answer (default 60)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log the gateway's INFO lines")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    out = sys.stdout
    env = dict(os.environ)
    if args.config:
        env["CONFIG_PATH"] = args.config
    logging.basicConfig(level=logging.INFO if args.verbose else logging.ERROR,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        settings = load_settings(env)
    except ConfigError as exc:
        print(f"check: configuration error: {exc}", file=sys.stderr)
        return 1
    base_url = args.base_url or default_base_url(settings, env)
    rt = Runtime(dataclasses.replace(settings, token_usage_log="",
                                     read_timeout=min(settings.read_timeout, args.timeout)))
    try:
        report = examine(rt, base_url)
    finally:
        rt.close()
    rows = report.rows
    print(f"Configuration: {settings.source} ({len(settings.subaccounts)} subaccount(s), "
          f"{len(settings.client_key_digests)} client key(s))\n", file=out)
    print(render_table(rows), file=out)
    if report.client_ids:
        print("\nClient model ids per SAP model:", file=out)
        for model, ids in report.client_ids.items():
            print(f"  {model}: {', '.join(ids)}", file=out)
    print("\nClaude Code environment (put your own gateway key in ANTHROPIC_AUTH_TOKEN):",
          file=out)
    print("\n".join(report.env_lines), file=out)
    failures = [row for row in rows if not row.ok]
    if failures:
        print(f"\ncheck: {len(failures)} problem(s); see FAILED above", file=out)
        return 1
    print("\ncheck: all ok", file=out)
    return 0


def default_base_url(settings: Settings, env: Mapping[str, str]) -> str:
    bind = env.get("GATEWAY_BIND")
    host, port = (bind.rsplit(":", 1) if bind and ":" in bind
                  else (settings.host, str(settings.port)))
    if host in WILDCARD_HOSTS:
        host = "127.0.0.1"
    return f"http://{host}:{port}"


# --------------------------------------------------------------------------- the steps


def examine(rt: Runtime, base_url: str) -> Report:
    """The table's rows (one per deployment, plus one per subaccount problem), the
    client ids per SAP model, and the Claude Code environment lines for the models
    that answered their probe."""
    token_errors: dict[str, str] = {}
    for sub in rt.settings.subaccounts:
        try:
            rt.token_providers[sub.service_key.cache_key].token()
        except GatewayError as exc:
            token_errors[sub.name] = exc.message
    if rt.registry.needs_discovery:
        rt.registry.refresh()
    models = rt.registry.models()
    rows: list[Row] = []
    answered: set[str] = set()
    for model in sorted(models):
        for target in models[model]:
            token_ok = target.subaccount not in token_errors
            if not token_ok:
                ok, probe = False, "skipped: no token"
            elif family_of(model) == "other":
                ok, probe = True, "skipped: not a Claude, GPT or Gemini model"
            else:
                ok, probe = probe_deployment(rt, target)
                if ok:
                    answered.add(model)
            rows.append(Row(target.subaccount, model, target.deployment_id,
                            "ok" if token_ok else "FAILED", probe, ok))
    rows.extend(subaccount_problems(rt, models, token_errors))
    ids = {model: client_ids(model, models, rt.settings.model_aliases) for model in sorted(models)}
    return Report(rows, ids, claude_code_env(base_url, answered or set(models)))


def subaccount_problems(rt: Runtime, models: Mapping[str, tuple[Target, ...]],
                        token_errors: Mapping[str, str]) -> list[Row]:
    """A row for each subaccount without a token, failed discovery or missing model."""
    rows = []
    for sub in rt.settings.subaccounts:
        serving = {m for m, targets in models.items()
                   if any(t.subaccount == sub.name for t in targets)}
        token = "FAILED" if sub.name in token_errors else "ok"
        if sub.name in token_errors:
            rows.append(Row(sub.name, "-", "-", token,
                            "FAILED: " + token_errors[sub.name], False))
        elif sub.name in rt.registry.discovery_errors:
            rows.append(Row(sub.name, "-", "-", token, "FAILED: deployment discovery failed: "
                            + rt.registry.discovery_errors[sub.name], False))
        elif sub.discover and not sub.deployment_models and not serving:
            rows.append(Row(sub.name, "-", "-", token, "FAILED: no RUNNING deployment "
                            "discovered in resource group " + sub.resource_group, False))
        for model, urls in sub.deployment_models.items():
            if not urls and model not in serving and sub.name not in token_errors:
                rows.append(Row(sub.name, model, "-", token, "FAILED: no RUNNING deployment "
                                "of this model discovered", False))
    return rows


class _OneDeployment:
    """The deployment registry as the failover loop sees it, narrowed to one target."""

    def __init__(self, target: Target) -> None:
        self._target = target

    def targets(self, model: str) -> tuple[Target, ...]:
        return (self._target,) if model == self._target.model else ()

    def request_refresh(self) -> None:
        """A 404 would wake the refresher; a check has none."""


def probe_deployment(rt: Runtime, target: Target) -> tuple[bool, str]:
    """(ok, "ok 120 ms" or "FAILED: why") for a one-token call of ``target``: a chat model
    through the gateway's own path for its family, an embeddings model with one input."""
    view = copy.copy(rt)  # same session, tokens, profiles and learned rules
    view.registry = _OneDeployment(target)  # type: ignore[assignment]
    view.balancer = Balancer()
    started = time.perf_counter()
    try:
        if "embedding" in target.model:
            exchange = _probe_embeddings(view, target)
            answer = read_json(exchange.response)
            shape_ok = isinstance(answer.get("data"), list)
        else:
            body = {"model": target.model, "max_tokens": 1,
                    "messages": [{"role": "user", "content": PROBE_PROMPT}]}
            call = open_pivot(view, target.model, body, (), stream=False,
                              client_model=target.model)
            exchange = call.exchange
            answer = call.bedrock_message(read_json(exchange.response))
            shape_ok = isinstance(answer.get("content"), list)
    except (GatewayError, SanitizeError) as exc:
        return False, "FAILED: " + (exc.message if isinstance(exc, GatewayError) else str(exc))
    elapsed = (time.perf_counter() - started) * 1000
    if not shape_ok:
        return False, "FAILED: the answer is not what the model's API returns"
    repairs = f" (repaired: {', '.join(exchange.repairs)})" if exchange.repairs else ""
    return True, f"ok {elapsed:.0f} ms{repairs}"


def _probe_embeddings(rt: Runtime, target: Target) -> Exchange:
    plan = StaticPlan(api_path(rt.gpt_profile(target.model), embeddings=True),
                      dumps({"input": PROBE_PROMPT}))
    return open_exchange(rt, target.model, plan, stream=False, client_model=target.model)


def client_ids(sap_name: str, available: Collection[str], aliases: Mapping[str, str]) -> list[str]:
    """Client model ids the gateway resolves to ``sap_name`` (a representative few)."""
    candidates = [sap_name] + sorted(a for a, target in aliases.items() if target == sap_name)
    parsed = parse_claude(sap_name) if family_of(sap_name) == "claude" else None
    if parsed is not None:
        candidates.append(parsed.anthropic_id)
    ids = [c for c in candidates
           if (r := resolve(c, available, aliases)) is not None and r.sap_name == sap_name]
    if parsed is not None and newest_of_family(parsed.family, available) == sap_name:
        ids.append(f"other claude-{parsed.family}-* ids (newest {parsed.family})")
    return ids


def render_table(rows: list[Row]) -> str:
    header = Row("SUBACCOUNT", "MODEL", "DEPLOYMENT", "TOKEN", "PROBE", True)
    cells = [[r.subaccount, r.model, r.deployment, r.token, r.probe] for r in [header, *rows]]
    widths = [max(len(c[i]) for c in cells) for i in range(4)]
    return "\n".join("  ".join([*(c[i].ljust(widths[i]) for i in range(4)), c[4]]).rstrip()
                     for c in cells)
