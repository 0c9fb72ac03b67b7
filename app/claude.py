"""Forwarding an Anthropic Messages request to Claude on SAP AI Core (Bedrock ``/invoke``).

:func:`open_claude` does everything that must happen before the first byte goes to
the client, and nothing after it:

1. order the model's deployments (session affinity, else round-robin; deployments
   cooling down after 429/5xx only after the healthy ones) - ``balancer.py``;
2. per attempt, sanitize the body for that model's profile plus the rules learned
   for that deployment, and post it;
3. self-heal once on a 400 naming a rejected field or beta (same deployment);
4. fail over to the next healthy deployment on connect errors, timeouts, 429,
   5xx/529, 404 (deployment gone), and for streams on a throttling or error event
   before ``message_start`` or a stall before the first event; at most
   ``max_attempts`` attempts and no new attempt after ``failover_deadline``.

It returns an open :class:`Exchange` or raises a :class:`GatewayError`: 429 with a
``retry-after`` the client can obey when every deployment is throttled. No Flask here.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from typing import Iterable

import requests

from app.errors import (BadGateway, GatewayError, GatewayTimeout, NotFound, Overloaded,
                        RateLimited, from_upstream, upstream_message)
from app.runtime import Runtime
from app.translate.bedrock_stream import classify_error
from app.translate.sanitize import sanitize_bedrock
from app.translate.self_heal import apply_rule, rule_from_error
from app.upstream.deployments import Target
from app.upstream.events import END, TIMEOUT, EventSource
from app.wire.jsoncodec import dumps
from app.wire.sse import SSEEvent

log = logging.getLogger(__name__)

INVOKE = "/invoke"
INVOKE_STREAM = "/invoke-with-response-stream"

# Cooldowns when the upstream gave no Retry-After.
THROTTLE_COOLDOWN = 5.0
FAILURE_COOLDOWN = 10.0
GONE_COOLDOWN = 30.0
FAILOVER_STATUSES = frozenset({404, 408, 429, 500, 502, 503, 504, 529})


@dataclass
class Exchange:
    target: Target
    response: requests.Response | None = None  # non-streaming: the whole answer
    source: EventSource | None = None  # streaming: the open upstream stream
    pending: list[SSEEvent] = field(default_factory=list)  # events read before commit
    repairs: list[str] = field(default_factory=list)
    failovers: int = 0


class _Failed(Exception):
    """One attempt failed in a way another deployment may not: try the next one."""

    def __init__(self, error: GatewayError, cooldown: float) -> None:
        super().__init__(error.message)
        self.error = error
        self.cooldown = cooldown


def open_claude(rt: Runtime, sap_model: str, body: dict, betas: Iterable[str], *,
                stream: bool, client_model: str, affinity: str | None = None) -> Exchange:
    settings = rt.settings
    targets = rt.registry.targets(sap_model)
    if not targets:
        raise NotFound(f"model {client_model} has no RUNNING deployment on SAP AI Core")
    healthy, cooling = rt.balancer.order(sap_model, targets, affinity)
    if not healthy:
        wait = rt.balancer.seconds_until_free(cooling)
        raise RateLimited(f"every SAP AI Core deployment of {client_model} is throttled; "
                          f"retry in {_seconds(wait)} s", retry_after=_seconds(wait))
    betas = list(betas)
    deadline = time.monotonic() + settings.failover_deadline
    failures: list[GatewayError] = []
    for attempt, target in enumerate(healthy[:settings.max_attempts]):
        if attempt and time.monotonic() > deadline:
            break
        try:
            exchange = _attempt(rt, target, sap_model, body, betas, stream, client_model)
        except _Failed as failed:
            failures.append(failed.error)
            rt.balancer.cool_down(target, failed.cooldown)
            log.info("deployment %s of %s failed (%s); %s", target.deployment_id, sap_model,
                     type(failed.error).__name__,
                     "trying the next one" if attempt + 1 < len(healthy) else "no other left")
            continue
        rt.balancer.recovered(target)
        exchange.failovers = attempt
        return exchange
    raise _final_error(rt, failures, targets, client_model)


def _attempt(rt: Runtime, target: Target, sap_model: str, body: dict, betas: list[str],
             stream: bool, client_model: str) -> Exchange:
    result = sanitize_bedrock(body, betas=betas, profile=rt.profile(sap_model),
                              extra_strip=rt.learned_rules(target.url))
    repairs = list(result.repairs)
    sent = result.body
    resp = _post(rt, target, sent, stream)
    if resp.status_code == 400:
        healed = _self_heal(rt, target, sent, resp)
        if healed is not None:
            sent, rule_key = healed
            repairs.append("healed:" + rule_key)
            resp = _post(rt, target, sent, stream)
    if resp.status_code != 200:
        _raise_for_status(rt, resp, client_model)
    if not stream:
        return Exchange(target, response=resp, repairs=repairs)
    source = EventSource(resp)
    first = source.first_events(rt.settings.first_event_timeout)
    if first is TIMEOUT:
        source.abort()
        raise _Failed(GatewayTimeout(f"SAP AI Core sent no event for {client_model} within "
                                     f"{rt.settings.first_event_timeout:g} s"), FAILURE_COOLDOWN)
    if first is END:
        raise _Failed(BadGateway(f"SAP AI Core ended the stream of {client_model} before "
                                 "its first event"), FAILURE_COOLDOWN)
    _check_first_event(source, first, client_model)
    return Exchange(target, source=source, pending=first, repairs=repairs)


def _post(rt: Runtime, target: Target, sent: dict, stream: bool) -> requests.Response:
    try:
        return rt.upstream.post(target, INVOKE_STREAM if stream else INVOKE, dumps(sent),
                                stream=stream)
    except (BadGateway, GatewayTimeout) as exc:
        raise _Failed(exc, FAILURE_COOLDOWN) from None


def _raise_for_status(rt: Runtime, resp: requests.Response, client_model: str) -> None:
    status = resp.status_code
    error = _upstream_error(resp, client_model)
    if status == 404:
        rt.registry.request_refresh()
        raise _Failed(error, GONE_COOLDOWN)
    if status in FAILOVER_STATUSES or isinstance(error, (RateLimited, Overloaded)):
        cooldown = error.retry_after if error.retry_after is not None else (
            THROTTLE_COOLDOWN if isinstance(error, RateLimited) else FAILURE_COOLDOWN)
        raise _Failed(error, float(cooldown))
    if status in (401, 403):
        raise _Failed(error, FAILURE_COOLDOWN)  # this subaccount's credentials; others may work
    raise error


def _check_first_event(source: EventSource, first: list[SSEEvent], client_model: str) -> None:
    """A stream whose first event is an error (e.g. throttling) fails over like a 429/5xx."""
    data = first[0].data
    if '"message_start"' in data[:40]:
        return
    try:
        event = json.loads(data)
    except ValueError:
        event = None
    if isinstance(event, dict) and event.get("type") not in (None, "error"):
        return
    source.abort()
    text = data if event is None else json.dumps(event.get("error", event))
    if classify_error(text) == "overloaded_error":
        raise _Failed(RateLimited(f"SAP AI Core throttled {client_model}",
                                  retry_after=int(THROTTLE_COOLDOWN)), THROTTLE_COOLDOWN)
    raise _Failed(Overloaded(f"SAP AI Core stream of {client_model} failed before it started"),
                  FAILURE_COOLDOWN)


def _final_error(rt: Runtime, failures: list[GatewayError], targets: tuple[Target, ...],
                 client_model: str) -> GatewayError:
    if failures and all(isinstance(f, RateLimited) for f in failures):
        wait = _seconds(rt.balancer.seconds_until_free(targets))
        return RateLimited(f"{failures[-1].message} (every deployment of {client_model} is "
                           f"throttled; retry in {wait} s)", retry_after=wait)
    if not failures:
        return Overloaded(f"no SAP AI Core deployment of {client_model} could be tried in "
                          "time", retry_after=int(THROTTLE_COOLDOWN))
    return failures[-1]


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


def _upstream_error(resp: requests.Response, client_model: str) -> GatewayError:
    try:
        body = resp.content
    except requests.RequestException:
        body = b""
    finally:
        resp.close()
    return from_upstream(resp.status_code, body, resp.headers, model=client_model)


def _seconds(wait: float) -> int:
    return max(1, min(60, int(wait + 0.999)))


