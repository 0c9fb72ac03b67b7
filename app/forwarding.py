"""Failover across a model's deployments, before the first byte reaches the client.

:func:`open_exchange` is the one loop every model family goes through (Claude on
Bedrock, GPT on Azure OpenAI, Gemini on Vertex): it orders the model's deployments
(session affinity, else round-robin; deployments cooling down after 429/5xx only
after the healthy ones, ``upstream/balancer.py``) and, per attempt, lets the family's
:class:`Plan` build and post the call. It fails over to the next deployment on
connect errors, timeouts, 429, 5xx/529, 404 (deployment gone), and for streams on an
error event before the stream started or a stall before the first event; at most
``max_attempts`` attempts and no new attempt after ``failover_deadline``, except that a
deployment that timed out (no headers or no first event in ``first_event_timeout``) always
gets a successor. A subaccount whose identity service gives no token is skipped without
cooling its deployments down. When every deployment cools down, those that failed (not
throttled) are tried anyway: one transient 5xx must not lock out a model with one deployment.

It returns an open :class:`Exchange` or raises a :class:`GatewayError`: 429 with a
``retry-after`` the client can obey when every deployment is throttled, else the most
retryable of the failures (429, then 5xx, then the last). What a plan
adds is only what differs per family: the body and URL suffix for one deployment,
the optional self-healing of a rejected field, and what a failed first event looks
like. No Flask here.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Protocol

import requests

from app.errors import (BadGateway, GatewayError, GatewayTimeout, IdentityServiceDown,
                        IdentityServiceRefused, NotFound, Overloaded, RateLimited, failed_start,
                        from_upstream)
from app.runtime import Runtime
from app.upstream.deployments import Target
from app.upstream.events import END, TIMEOUT, EventDecoder, EventSource
from app.wire.jsoncodec import loads
from app.wire.sse import SSEEvent

log = logging.getLogger(__name__)

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
    # seconds from sending the successful call to SAP AI Core's first event (streams) or
    # to its answer's headers (non-streamed: they come with the finished answer)
    upstream_ttfb: float | None = None


class Failed(Exception):
    """One attempt failed in a way another deployment may not: try the next one."""

    def __init__(self, error: GatewayError, cooldown: float) -> None:
        super().__init__(error.message)
        self.error = error
        self.cooldown = cooldown


class Plan(Protocol):
    """What one model family adds to the failover loop."""

    def send(self, rt: Runtime, target: Target, stream: bool) -> tuple[requests.Response,
                                                                        list[str]]:
        """Post the call to ``target``: the response and the repairs made to the body."""

    def started(self, data: str) -> bool:
        """True when the first stream event ``data`` is a normal start (not an error)."""

    def stream_decoder(self) -> EventDecoder | None:
        """The decoder of the upstream stream's framing (None: server-sent events)."""


def open_exchange(rt: Runtime, sap_model: str, plan: Plan, *, stream: bool,
                  client_model: str, affinity: str | None = None) -> Exchange:
    settings = rt.settings
    targets = rt.registry.targets(sap_model)
    if not targets:
        raise NotFound(f"model {client_model} has no RUNNING deployment on SAP AI Core")
    healthy, cooling = rt.balancer.order(sap_model, targets, affinity)
    if not healthy:
        healthy = [t for t in cooling if not rt.balancer.throttled(t)]
    if not healthy:
        wait = rt.balancer.seconds_until_free(cooling)
        raise RateLimited(f"every SAP AI Core deployment of {client_model} is throttled; "
                          f"retry in {seconds(wait)} s", retry_after=seconds(wait))
    deadline = time.monotonic() + settings.failover_deadline
    failures: list[GatewayError] = []
    tried = healthy[:max(1, settings.max_attempts)]
    for attempt, target in enumerate(tried):
        if attempt and time.monotonic() > deadline and not isinstance(failures[-1],
                                                                      GatewayTimeout):
            break
        try:
            exchange = _attempt(rt, target, plan, stream, client_model)
        except Failed as failed:
            failures.append(failed.error)
            if failed.cooldown > 0:
                rt.balancer.cool_down(target, failed.cooldown,
                                      throttled=isinstance(failed.error, RateLimited))
            log.info("deployment %s of %s failed (%s); %s", target.deployment_id, sap_model,
                     type(failed.error).__name__,
                     "trying the next one" if attempt + 1 < len(tried) else "no other left")
            continue
        rt.balancer.recovered(target)
        exchange.failovers = attempt
        return exchange
    raise _final_error(rt, failures, targets, client_model)


def post(rt: Runtime, target: Target, suffix: str, payload: bytes,
         stream: bool) -> requests.Response:
    """One upstream call; transport failures fail over, as does a subaccount without a
    token (its deployments are not to blame: no cooldown)."""
    try:
        return rt.upstream.post(target, suffix, payload, stream=stream)
    except (IdentityServiceDown, IdentityServiceRefused) as exc:
        raise Failed(exc, 0.0) from None
    except (BadGateway, GatewayTimeout) as exc:
        raise Failed(exc, FAILURE_COOLDOWN) from None


def read_json(upstream: requests.Response) -> dict:
    """A non-streaming upstream answer as a JSON object, or a 502."""
    try:
        raw = upstream.content
    except requests.RequestException:
        raise BadGateway("SAP AI Core broke off its response") from None
    finally:
        upstream.close()
    try:
        body = loads(raw)
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise BadGateway("SAP AI Core sent an unreadable response")
    return body


def _attempt(rt: Runtime, target: Target, plan: Plan, stream: bool,
             client_model: str) -> Exchange:
    resp, repairs = plan.send(rt, target, stream)
    sent_at = time.perf_counter() - resp.elapsed.total_seconds()
    if resp.status_code != 200:
        _raise_for_status(rt, resp, client_model)
    if not stream:
        return Exchange(target, response=resp, repairs=repairs,
                        upstream_ttfb=resp.elapsed.total_seconds())
    source = EventSource(resp, plan.stream_decoder(),
                         idle_timeout=rt.settings.stream_idle_timeout,
                         read_waiter=rt.read_waiter)
    first = source.first_events(rt.settings.first_event_timeout)
    if first is TIMEOUT:
        source.abort()
        raise Failed(GatewayTimeout(f"SAP AI Core sent no event for {client_model} within "
                                    f"{rt.settings.first_event_timeout:g} s"), FAILURE_COOLDOWN)
    if first is END:
        raise Failed(BadGateway(f"SAP AI Core ended the stream of {client_model} before "
                                "its first event"), FAILURE_COOLDOWN)
    if not plan.started(first[0].data):
        source.abort()
        _raise_for_first_event(first[0].data, client_model)
    return Exchange(target, source=source, pending=first, repairs=repairs,
                    upstream_ttfb=time.perf_counter() - sent_at)


def _raise_for_status(rt: Runtime, resp: requests.Response, client_model: str) -> None:
    status = resp.status_code
    error = upstream_error(resp, client_model)
    if status == 404:
        rt.registry.request_refresh()
        raise Failed(error, GONE_COOLDOWN)
    if status in FAILOVER_STATUSES or isinstance(error, (RateLimited, Overloaded)):
        cooldown = error.retry_after if error.retry_after is not None else (
            THROTTLE_COOLDOWN if isinstance(error, RateLimited) else FAILURE_COOLDOWN)
        raise Failed(error, float(cooldown))
    if status in (401, 403):
        raise Failed(error, FAILURE_COOLDOWN)  # this subaccount's credentials; others may work
    raise error


def _raise_for_first_event(data: str, client_model: str) -> None:
    """A stream whose first event is an error (e.g. throttling) fails over like a 429/5xx."""
    error = failed_start(data, client_model, int(THROTTLE_COOLDOWN))
    raise Failed(error, THROTTLE_COOLDOWN if isinstance(error, RateLimited) else FAILURE_COOLDOWN)


def _final_error(rt: Runtime, failures: list[GatewayError], targets: tuple[Target, ...],
                 client_model: str) -> GatewayError:
    if not failures:
        return Overloaded(f"no SAP AI Core deployment of {client_model} could be tried in "
                          "time", retry_after=int(THROTTLE_COOLDOWN))
    throttles = [f for f in failures if isinstance(f, RateLimited)]
    if throttles:
        wait = seconds(rt.balancer.seconds_until_free(targets))
        every = "every deployment" if len(throttles) == len(failures) else "deployments"
        return RateLimited(f"{throttles[-1].message} ({every} of {client_model} "
                           f"throttled or failing; retry in {wait} s)", retry_after=wait)
    transient = [f for f in failures if f.status >= 500]
    return transient[-1] if transient else failures[-1]


def upstream_error(resp: requests.Response, client_model: str) -> GatewayError:
    try:
        body = resp.content
    except requests.RequestException:
        body = b""
    finally:
        resp.close()
    return from_upstream(resp.status_code, body, resp.headers, model=client_model)


def seconds(wait: float) -> int:
    return max(1, min(60, int(wait + 0.999)))
