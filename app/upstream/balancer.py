"""In which order a model's deployments are tried, and which are cooling down.

Per worker, in memory. A request with an affinity key (the Claude Code session id,
else a digest of its system prompt and tools) goes to the same deployment while that
deployment is healthy, by rendezvous hashing, so prompt-cache hits survive load
balancing; without one, requests rotate round-robin. A deployment that answered
429, 5xx or not at all is put in a cooldown (``Retry-After`` when it gave one) and
tried only after the healthy ones; :meth:`Balancer.throttled` tells a throttled one (429,
whose ``Retry-After`` the gateway honours) from one that merely failed. The clock is
injected.
"""

from __future__ import annotations

import itertools
import time
import zlib
from typing import Callable, Sequence

from app import metrics
from app.upstream.deployments import Target

MAX_COOLDOWN_SECONDS = 60.0


class Balancer:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._cooldown_until: dict[str, float] = {}
        self._throttled: set[str] = set()  # urls whose cooldown is a throttle (429)
        self._counters: dict[str, Callable[[], int]] = {}

    def order(self, model: str, targets: Sequence[Target],
              affinity: str | None = None) -> tuple[list[Target], list[Target]]:
        """(healthy targets in the order to try them, targets still cooling down)."""
        if len(targets) > 1:
            if affinity:
                key = affinity.encode("utf-8", "surrogatepass")  # lone surrogates hash too
                targets = sorted(targets, key=lambda t: zlib.crc32(t.url.encode(), zlib.crc32(key)),
                                 reverse=True)
            else:
                counter = self._counters.get(model)
                if counter is None:
                    counter = self._counters.setdefault(model, itertools.count().__next__)
                start = counter() % len(targets)
                targets = list(targets[start:]) + list(targets[:start])
        if not self._cooldown_until:
            return list(targets), []
        now = self._clock()
        healthy, cooling = [], []
        for target in targets:
            (cooling if self._cooldown_until.get(target.url, 0.0) > now else healthy).append(target)
        cooling.sort(key=lambda t: self._cooldown_until[t.url])
        return healthy, cooling

    def cool_down(self, target: Target, seconds: float, *, throttled: bool = False) -> None:
        metrics.cooldown(target.deployment_id)
        seconds = max(0.0, min(MAX_COOLDOWN_SECONDS, seconds))
        until = self._clock() + seconds
        if until > self._cooldown_until.get(target.url, 0.0):
            self._cooldown_until[target.url] = until
            if throttled:
                self._throttled.add(target.url)
            else:
                self._throttled.discard(target.url)

    def throttled(self, target: Target) -> bool:
        """True while ``target`` cools down after a throttle (not after a failure)."""
        return target.url in self._throttled and \
            self._cooldown_until.get(target.url, 0.0) > self._clock()

    def recovered(self, target: Target) -> None:
        if self._cooldown_until:
            self._cooldown_until.pop(target.url, None)
            self._throttled.discard(target.url)

    def seconds_until_free(self, targets: Sequence[Target]) -> float:
        """How long until the first of ``targets`` leaves its cooldown (0 if one is free)."""
        now = self._clock()
        return max(0.0, min((self._cooldown_until.get(t.url, 0.0) - now for t in targets),
                            default=0.0))
