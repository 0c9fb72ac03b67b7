"""Forwarding an Anthropic Messages request to Claude on SAP AI Core (Bedrock ``/invoke``).

:func:`open_claude` does everything that must happen before the first byte goes
to the client: pick a deployment (round-robin per worker), sanitize the body for
that model's profile plus the rules learned for that deployment, post it, and
self-heal once on a 400 that names a rejected field or beta. It returns an open
:class:`Exchange` (status 200) or raises a :class:`GatewayError`. No Flask here.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Iterable

import requests

from app.errors import GatewayError, NotFound, from_upstream, upstream_message
from app.runtime import Runtime
from app.translate.sanitize import sanitize_bedrock
from app.translate.self_heal import apply_rule, rule_from_error
from app.upstream.deployments import Target

log = logging.getLogger(__name__)

INVOKE = "/invoke"
INVOKE_STREAM = "/invoke-with-response-stream"


@dataclass
class Exchange:
    response: requests.Response
    target: Target
    repairs: list[str] = field(default_factory=list)


def open_claude(rt: Runtime, sap_model: str, body: dict, betas: Iterable[str], *,
                stream: bool, client_model: str) -> Exchange:
    targets = rt.registry.pick(sap_model)
    if not targets:
        raise NotFound(f"model {client_model} has no RUNNING deployment on SAP AI Core")
    target = targets[0]
    result = sanitize_bedrock(body, betas=betas, profile=rt.profile(sap_model),
                              extra_strip=rt.learned_rules(target.url))
    repairs = list(result.repairs)
    sent = result.body
    suffix = INVOKE_STREAM if stream else INVOKE
    resp = rt.upstream.post(target, suffix, _dumps(sent), stream=stream)
    if resp.status_code == 400:
        healed = _self_heal(rt, target, sent, resp, client_model)
        if healed is not None:
            sent, rule_key = healed
            repairs.append("healed:" + rule_key)
            resp = rt.upstream.post(target, suffix, _dumps(sent), stream=stream)
    if resp.status_code != 200:
        raise _upstream_error(resp, client_model)
    return Exchange(resp, target, repairs)


def _self_heal(rt: Runtime, target: Target, sent: dict, resp: requests.Response,
               client_model: str) -> tuple[dict, str] | None:
    """A body without the field the upstream named, or None (``resp`` stays readable)."""
    resp.content  # noqa: B018 - read the small error body once, keep it for the error path
    rule = rule_from_error(upstream_message(resp.content))
    if rule is None:
        return None
    healed = apply_rule(sent, rule)
    if healed is None:
        return None
    rt.learn_rule(target.url, rule.key)
    log.warning("deployment %s of %s rejected '%s'; removed it and retrying once (add it "
                "to the model profile)", target.deployment_id, target.model, rule.key)
    return healed, rule.key


def _upstream_error(resp: requests.Response, client_model: str) -> GatewayError:
    try:
        body = resp.content
    except requests.RequestException:
        body = b""
    finally:
        resp.close()
    return from_upstream(resp.status_code, body, resp.headers, model=client_model)


def _dumps(body: dict) -> bytes:
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
