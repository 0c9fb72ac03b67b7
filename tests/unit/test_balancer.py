"""Balancer: round-robin, session affinity, cooldowns (injected clock)."""

from __future__ import annotations

from app.upstream.balancer import Balancer
from app.upstream.deployments import Target
from tests.http_fakes import deployment_url

MODEL = "anthropic--claude-4.5-sonnet"


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def targets(*ids):
    return tuple(Target(url=deployment_url(i), model=MODEL, subaccount="s", resource_group="rg",
                        tokens=None) for i in ids)


def ids(seq):
    return [t.deployment_id for t in seq]


def test_round_robin_without_affinity():
    balancer, pool = Balancer(Clock()), targets("a", "b", "c")
    firsts = [balancer.order(MODEL, pool)[0][0].deployment_id for _ in range(6)]
    assert firsts == ["a", "b", "c", "a", "b", "c"]
    assert sorted(ids(balancer.order(MODEL, pool)[0])) == ["a", "b", "c"]


def test_affinity_is_stable_and_spreads_sessions():
    balancer, pool = Balancer(Clock()), targets("a", "b", "c")
    for session in ("s1", "s2", "s3"):
        chosen = {balancer.order(MODEL, pool, session)[0][0].deployment_id for _ in range(5)}
        assert len(chosen) == 1
    spread = {balancer.order(MODEL, pool, f"session-{n}")[0][0].deployment_id for n in range(60)}
    assert spread == {"a", "b", "c"}


def test_affinity_moves_only_while_its_deployment_cools_down():
    clock = Clock()
    balancer, pool = Balancer(clock), targets("a", "b", "c")
    home = balancer.order(MODEL, pool, "sess")[0][0]
    balancer.cool_down(home, 8)
    healthy, cooling = balancer.order(MODEL, pool, "sess")
    assert home not in healthy and cooling == [home]
    assert balancer.seconds_until_free([home]) == 8
    clock.now += 8.5
    assert balancer.order(MODEL, pool, "sess")[0][0] is home


def test_cooldowns_are_capped_and_cleared_on_success():
    clock = Clock()
    balancer, pool = Balancer(clock), targets("a", "b")
    balancer.cool_down(pool[0], 3600)
    assert balancer.seconds_until_free(pool[:1]) == 60
    assert balancer.seconds_until_free(pool) == 0
    balancer.recovered(pool[0])
    assert balancer.order(MODEL, pool)[1] == []


def test_throttled_and_failed_cooldowns_are_told_apart():
    clock = Clock()
    balancer, pool = Balancer(clock), targets("a", "b")
    balancer.cool_down(pool[0], 10, throttled=True)
    balancer.cool_down(pool[1], 10)
    assert balancer.throttled(pool[0]) and not balancer.throttled(pool[1])
    clock.now += 11
    assert not balancer.throttled(pool[0])
    balancer.cool_down(pool[0], 5, throttled=True)
    balancer.recovered(pool[0])
    assert not balancer.throttled(pool[0])


def test_an_affinity_key_with_a_lone_surrogate_still_orders():
    balancer, pool = Balancer(Clock()), targets("a", "b")
    assert len(balancer.order(MODEL, pool, "\ud800 session")[0]) == 2
