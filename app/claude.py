"""Forwarding an Anthropic Messages request to Claude on SAP AI Core (Bedrock ``/invoke``).

:func:`open_claude` runs the failover loop of :mod:`app.forwarding` with the Claude
:class:`ClaudePlan`: per attempt it sanitizes the body for that model's profile plus
the rules learned for that deployment, posts it to ``/invoke`` or
``/invoke-with-response-stream``, and self-heals once on a 400 naming a rejected
field or beta (same deployment, rule remembered for it). A stream has started when
its first event is anything but an error. No Flask here.
"""

from __future__ import annotations

import json
import logging
from typing import Iterable

import requests

from app.errors import upstream_message
from app.forwarding import Exchange, open_exchange, post
from app.runtime import Runtime
from app.translate.sanitize import sanitize_bedrock
from app.translate.self_heal import apply_rule, rule_from_error
from app.upstream.deployments import Target
from app.wire.jsoncodec import dumps

log = logging.getLogger(__name__)

INVOKE = "/invoke"
INVOKE_STREAM = "/invoke-with-response-stream"


class ClaudePlan:
    __slots__ = ("sap_model", "body", "betas")

    def __init__(self, sap_model: str, body: dict, betas: Iterable[str]) -> None:
        self.sap_model = sap_model
        self.body = body
        self.betas = list(betas)

    def send(self, rt: Runtime, target: Target, stream: bool) -> tuple[requests.Response,
                                                                        list[str]]:
        result = sanitize_bedrock(self.body, betas=self.betas, profile=rt.profile(self.sap_model),
                                  extra_strip=rt.learned_rules(target.url))
        repairs = list(result.repairs)
        sent = result.body
        suffix = INVOKE_STREAM if stream else INVOKE
        resp = post(rt, target, suffix, dumps(sent), stream)
        if resp.status_code == 400:
            healed = _self_heal(rt, target, sent, resp)
            if healed is not None:
                sent, rule_key = healed
                repairs.append("healed:" + rule_key)
                resp = post(rt, target, suffix, dumps(sent), stream)
        return resp, repairs

    def started(self, data: str) -> bool:
        if '"message_start"' in data[:40]:
            return True
        try:
            event = json.loads(data)
        except ValueError:
            return False
        return isinstance(event, dict) and event.get("type") not in (None, "error")

    def stream_decoder(self) -> None:
        return None  # Bedrock streams are server-sent events


def open_claude(rt: Runtime, sap_model: str, body: dict, betas: Iterable[str], *,
                stream: bool, client_model: str, affinity: str | None = None) -> Exchange:
    return open_exchange(rt, sap_model, ClaudePlan(sap_model, body, betas), stream=stream,
                         client_model=client_model, affinity=affinity)


def _self_heal(rt: Runtime, target: Target, sent: dict,
               resp: requests.Response) -> tuple[dict, str] | None:
    """A body without the field the upstream named, or None (``resp`` stays readable)."""
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
