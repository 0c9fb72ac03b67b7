"""Readiness: can this worker serve a request right now? (``GET /ready``.)

Ready means: the configuration is loaded (the runtime exists), a token is
obtainable for every subaccount, and every model the configuration names is known
with at least one RUNNING deployment, discovery having succeeded for every
subaccount that relies on it. Cheap enough for a load balancer to poll: a cached
token is reused (a fetch happens only when it expired, bounded by the token
timeouts, and a failed fetch is remembered for a few seconds, so an IdP outage is
not hammered); deployments come from the registry's current map, never from a new
discovery call, and nothing waits for the first discovery to finish.

The report names subaccounts and models and says what is missing; it never holds a
secret, a token, a URL or a deployment id. No Flask here.
"""

from __future__ import annotations

from typing import Any

from app.errors import GatewayError
from app.runtime import Runtime


def readiness(rt: Runtime) -> tuple[bool, dict[str, Any]]:
    """(ready?, the JSON report): ``{"status", "models", "problems"}``."""
    problems: list[dict[str, str]] = []
    for sub in rt.settings.subaccounts:
        try:
            rt.token_providers[sub.service_key.cache_key].token()
        except GatewayError as exc:
            problems.append({"subaccount": sub.name, "problem": "token", "detail": exc.message})
    registry = rt.registry
    models = registry.models()
    discovered = not registry.needs_discovery or registry.wait_ready(0)
    if not discovered:
        problems.append({"problem": "deployments",
                         "detail": "the first deployment discovery has not finished yet"})
    else:
        problems.extend(_deployment_problems(rt, models))
    body = {"status": "not ready" if problems else "ready",
            "models": {name: len(targets) for name, targets in sorted(models.items())},
            "problems": problems}
    return not problems, body


def _deployment_problems(rt: Runtime, models) -> list[dict[str, str]]:
    problems = []
    errors = dict(rt.registry.discovery_errors)
    for sub in rt.settings.subaccounts:
        serving = {m for m, targets in models.items() if any(t.subaccount == sub.name
                                                            for t in targets)}
        if sub.discover and sub.name in errors and not serving:
            problems.append({"subaccount": sub.name, "problem": "deployments",
                             "detail": f"deployment discovery failed: {errors[sub.name]}"})
            continue
        for model, urls in sub.deployment_models.items():
            if not urls and model not in serving:
                problems.append({"subaccount": sub.name, "model": model,
                                 "problem": "deployments",
                                 "detail": "no RUNNING deployment of this model was found"})
    if not models and not problems:
        problems.append({"problem": "deployments",
                         "detail": "no deployment found in any subaccount: no model to serve"})
    return problems
