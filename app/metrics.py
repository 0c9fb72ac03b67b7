"""Prometheus metrics of the gateway, summed across gunicorn workers; no Flask, no I/O per request.

Under gunicorn, ``gunicorn.conf.py`` gives every worker one ``PROMETHEUS_MULTIPROC_DIR``
(before they fork), so prometheus_client keeps each value in a per-worker mmap file
and a scrape, answered by whichever worker, merges all of them. Without that variable
(pytest, ``flask run``) values live in this process only.

Per-request metrics are recorded in one place: :meth:`GatewayMetrics.record`, called
once by :meth:`app.log.RequestRecord.finish`. Label children are looked up once per
distinct label tuple and cached in a dict, so a request costs one dict hit plus the
increments. Labels are bounded sets only: the route rule (not the raw path), the SAP
model the request was resolved to (not the client's free-form model id), the status,
the client key's *label* (never the key), the deployment *id* (never its URL).

What is measured (``app/log.py`` sets the timestamps):

* duration: from the start of the request to its end (last byte handed to the server);
* time to first event: to the first byte of the answer body (first SSE event of a
  stream, or the complete non-streamed message);
* upstream latency (per deployment) and gateway overhead: when the request's record
  carries ``upstream_ttfb`` (seconds from sending the successful upstream call to SAP AI
  Core's first event / answer, set by :func:`app.forwarding.open_exchange` for every answered
  call); overhead is then time to first event minus that, i.e. what the gateway added before
  the client saw a byte (reading the body, sanitizing, failovers, token fetch, relaying the
  first event).
"""

from __future__ import annotations

import threading
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, values
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4

DURATION_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0)
FIRST_EVENT_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 20.0, 30.0, 60.0)
OVERHEAD_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)

#: error_type values of a stream that failed after its first byte because of SAP AI Core
STREAM_FAILURES = frozenset(("upstream_broke", "stream_error"))
TOKEN_KIND = {"input_tokens": "input", "output_tokens": "output",
              "cache_read_input_tokens": "cache_read", "cache_creation_input_tokens": "cache_write"}


class _Children:
    """The label children one kind of request touches, each resolved on first use (so no
    empty series appear, e.g. upstream latency of requests that never reached upstream)."""

    __slots__ = ("m", "route", "model", "client", "deployment", "requests", "duration",
                 "first_event", "overhead", "upstream", "tokens", "failovers", "stream_errors")

    def __init__(self, m: "GatewayMetrics", route: str, model: str, status: int, client: str,
                 deployment: str) -> None:
        self.m, self.route, self.model = m, route, model
        self.client, self.deployment = client, deployment
        self.requests = m.requests.labels(route, model, str(status))
        self.duration = m.duration.labels(route, model)
        self.first_event = self.overhead = self.upstream = None
        self.failovers = self.stream_errors = None
        self.tokens: dict[str, Any] = {}

    def first_event_child(self) -> Any:
        self.first_event = self.m.first_event.labels(self.route, self.model)
        return self.first_event

    def upstream_children(self) -> tuple[Any, Any]:
        self.upstream = self.m.upstream_latency.labels(self.model, self.deployment)
        self.overhead = self.m.overhead.labels(self.route, self.model)
        return self.upstream, self.overhead

    def token_child(self, usage_key: str) -> Any:
        child = self.tokens[usage_key] = self.m.tokens.labels(
            self.model, self.client, TOKEN_KIND[usage_key])
        return child


class GatewayMetrics:
    """All gateway metrics of one process, on a private registry (tests make their own)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter("gateway_requests", "Requests answered, by route rule, SAP "
                                "model ('-' if none) and HTTP status.",
                                ("route", "model", "status"), registry=r)
        self.duration = Histogram("gateway_request_duration_seconds", "Whole request, from "
                                  "arrival to its last byte.", ("route", "model"),
                                  buckets=DURATION_BUCKETS, registry=r)
        self.first_event = Histogram("gateway_time_to_first_event_seconds", "From arrival to "
                                     "the first answer byte (first SSE event, or the whole "
                                     "non-streamed message).", ("route", "model"),
                                     buckets=FIRST_EVENT_BUCKETS, registry=r)
        self.overhead = Histogram("gateway_overhead_seconds", "Time to first event minus SAP AI "
                                  "Core's own latency for it: what the gateway added.",
                                  ("route", "model"), buckets=OVERHEAD_BUCKETS, registry=r)
        self.upstream_latency = Histogram("gateway_upstream_latency_seconds", "From sending the "
                                          "successful call to SAP AI Core's first event or "
                                          "answer.", ("model", "deployment"),
                                          buckets=FIRST_EVENT_BUCKETS, registry=r)
        self.upstream_errors = Counter("gateway_upstream_errors", "Failed SAP AI Core calls by "
                                       "deployment id: phase before_first_byte (429, 5xx, "
                                       "timeouts, refused; each also starts a cooldown) or "
                                       "mid_stream (stream broke or sent an error event).",
                                       ("deployment", "phase"), registry=r)
        self.tokens = Counter("gateway_tokens", "Tokens by SAP model, client key label and "
                              "kind (input, output, cache_read, cache_write).",
                              ("model", "client", "kind"), registry=r)
        self.failovers = Counter("gateway_failovers", "Extra deployments tried before one "
                                 "answered, by SAP model.", ("model",), registry=r)
        self.cooldowns = Counter("gateway_cooldowns", "Deployments put in a cooldown after a "
                                 "failed call.", ("deployment",), registry=r)
        self.token_refreshes = Counter("gateway_oauth_token_refreshes", "OAuth token fetches "
                                       "from the SAP identity service (successful or not).",
                                       registry=r)
        self.streams_in_flight = Gauge("gateway_streams_in_flight", "Streamed answers being "
                                       "relayed now (summed over live workers).",
                                       multiprocess_mode="livesum", registry=r)
        self.multiprocess = bool(getattr(values.ValueClass, "_multiprocess", False))
        if self.multiprocess:
            self._scrape_registry = CollectorRegistry()
            MultiProcessCollector(self._scrape_registry)
        else:
            self._scrape_registry = self.registry
        self._children: dict[tuple, _Children] = {}
        self._cooldown_children: dict[str, tuple[Any, Any]] = {}

    # ------------------------------------------------------------------ hot path

    def record(self, rec: Any) -> None:
        """Everything one finished request contributes (``rec`` is a RequestRecord)."""
        key = (rec.route, rec.sap_model, rec.status, rec.key_label, rec.deployment)
        children = self._children.get(key)
        if children is None:
            children = self._children[key] = _Children(self, *key)
        children.requests.inc()
        children.duration.observe(rec.ended - rec.started)
        first = rec.first_event_at
        if first is not None:
            to_first = first - rec.started
            (children.first_event or children.first_event_child()).observe(to_first)
            upstream = rec.upstream_ttfb
            if upstream is not None:
                if children.upstream is None:
                    children.upstream_children()
                children.upstream.observe(upstream)
                children.overhead.observe(to_first - upstream if to_first > upstream else 0.0)
        usage = rec.usage
        if usage:
            tokens = children.tokens
            for name, n in usage.items():
                if type(n) is int and n > 0 and name in TOKEN_KIND:
                    (tokens.get(name) or children.token_child(name)).inc(n)
        if rec.failovers > 0:
            if children.failovers is None:
                children.failovers = self.failovers.labels(rec.sap_model)
            children.failovers.inc(rec.failovers)
        if rec.error_type in STREAM_FAILURES:
            if children.stream_errors is None:
                children.stream_errors = self.upstream_errors.labels(rec.deployment, "mid_stream")
            children.stream_errors.inc()
        if rec.in_flight:
            self.streams_in_flight.dec()

    def cooldown(self, deployment: str) -> None:
        pair = self._cooldown_children.get(deployment)
        if pair is None:
            pair = self._cooldown_children[deployment] = (
                self.cooldowns.labels(deployment),
                self.upstream_errors.labels(deployment, "before_first_byte"))
        pair[0].inc()
        pair[1].inc()

    # ------------------------------------------------------------------ scrape

    def exposition(self) -> bytes:
        """The text exposition of every worker's values (or this process's)."""
        return generate_latest(self._scrape_registry)


_metrics: GatewayMetrics | None = None
_lock = threading.Lock()


def current() -> GatewayMetrics:
    """This process's metrics, built on first use (after gevent patched the worker)."""
    global _metrics
    m = _metrics
    if m is None:
        with _lock:
            if _metrics is None:
                _metrics = GatewayMetrics()
            m = _metrics
    return m


def record_request(rec: Any) -> None:
    current().record(rec)


def stream_started() -> None:
    current().streams_in_flight.inc()


def cooldown(deployment: str) -> None:
    """A deployment failed a call and cools down (``app.upstream.balancer``)."""
    current().cooldown(deployment)


def token_refresh() -> None:
    """One OAuth token fetch (``app.upstream.oauth``)."""
    current().token_refreshes.inc()
