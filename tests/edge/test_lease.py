from __future__ import annotations

import asyncio

import pytest

from edge.lease import LeaseManager
from lecis.errors import CommandInvalid, LeaseDenied


class StepClock:
    def __init__(self) -> None:
        self.t = 0.0

    def now(self):  # type: ignore[no-untyped-def]
        raise NotImplementedError

    def monotonic(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.t += seconds
        await asyncio.sleep(0)


def manager(lost: list[str] | None = None) -> tuple[LeaseManager, StepClock]:
    clock = StepClock()
    sink = lost if lost is not None else []
    return LeaseManager(clock, 300, lambda holder, how: sink.append(holder)), clock


def test_one_holder_at_a_time_until_release() -> None:
    lease, _ = manager()
    token = lease.acquire({"holder": "hub", "ttl_s": 10})["token"]
    with pytest.raises(LeaseDenied, match="'hub'"):
        lease.acquire({"holder": "laptop", "ttl_s": 10})
    lease.release(token)
    assert lease.acquire({"holder": "laptop", "ttl_s": 10})["holder"] == "laptop"


def test_expired_lease_frees_the_unit_and_its_token_is_stale() -> None:
    lease, clock = manager()
    token = lease.acquire({"holder": "hub", "ttl_s": 10})["token"]
    clock.t = 10.5
    with pytest.raises(LeaseDenied, match="expired or released"):
        lease.verify(token)
    assert lease.acquire({"holder": "other", "ttl_s": 5})["holder"] == "other"


def test_renew_extends() -> None:
    lease, clock = manager()
    token = lease.acquire({"holder": "hub", "ttl_s": 10})["token"]
    clock.t = 9
    lease.renew(token)
    clock.t = 18
    assert lease.verify(token).holder == "hub"


@pytest.mark.parametrize(("args", "param"), [
    ({"holder": "", "ttl_s": 5}, "holder"),
    ({"holder": "hub", "ttl_s": 0}, "ttl_s"),
    ({"holder": "hub", "ttl_s": 301}, "ttl_s"),
    ({"holder": "hub", "ttl_s": "5"}, "ttl_s"),
    ({"holder": "hub", "ttl_s": 5, "x": 1}, "x"),
    ({"holder": "hub", "ttl_s": 10**400}, "ttl_s"),
    ({"holder": "hub", "ttl_s": -(10**400)}, "ttl_s"),
    ({"holder": "\ud800", "ttl_s": 5}, "holder"),
    ({"holder": "hub\n", "ttl_s": 5}, "holder"),
    ({"holder": "a\x00b", "ttl_s": 5}, "holder"),
    ({"holder": "\u202ehub", "ttl_s": 5}, "holder"),
])
def test_bad_acquire_arguments_name_the_parameter(args: dict[str, object], param: str) -> None:
    lease, _ = manager()
    with pytest.raises(CommandInvalid) as caught:
        lease.acquire(args)
    assert caught.value.param == param


async def test_watch_ends_the_lease_at_its_expiry_once() -> None:
    ended: list[tuple[str, str, float]] = []
    clock = StepClock()
    lease = LeaseManager(clock, 300, lambda holder, how: ended.append((holder, how, clock.t)))
    lease.acquire({"holder": "hub", "ttl_s": 1.25})
    task = asyncio.create_task(lease.watch())
    for _ in range(20):
        await asyncio.sleep(0)
    task.cancel()
    assert ended == [("hub", "expired", 1.25)], "a timer at the expiry, not a poll"


def test_expiry_is_decided_at_acquire_and_the_policy_runs_before_the_new_token() -> None:
    events: list[str] = []
    clock = StepClock()
    lease: LeaseManager

    def lost(holder: str, how: str) -> None:
        assert lease.current is None, "the old lease is gone before the policy runs"
        events.append(f"lost {holder} {how}")

    lease = LeaseManager(clock, 300, lost)
    lease.acquire({"holder": "hub", "ttl_s": 1})
    clock.t = 1.0  # expired, and no watch() runs: nobody polls
    granted = lease.acquire({"holder": "standby", "ttl_s": 5})
    events.append(f"granted {granted['holder']}")
    assert events == ["lost hub expired", "granted standby"]


@pytest.mark.parametrize("check", ["verify", "renew", "describe", "holder"])
def test_every_check_applies_the_policy_of_an_expired_lease(check: str) -> None:
    ended: list[tuple[str, str]] = []
    clock = StepClock()
    lease = LeaseManager(clock, 300, lambda holder, how: ended.append((holder, how)))
    token = lease.acquire({"holder": "hub", "ttl_s": 1})["token"]
    clock.t = 2
    if check in ("verify", "renew"):
        with pytest.raises(LeaseDenied):
            getattr(lease, check)(token)
    else:
        getattr(lease, check)()
    assert ended == [("hub", "expired")]
    lease.describe()
    assert ended == [("hub", "expired")], "once per lease"


def test_release_applies_the_policy_naming_the_holder() -> None:
    ended: list[tuple[str, str]] = []
    lease = LeaseManager(StepClock(), 300, lambda holder, how: ended.append((holder, how)))
    token = lease.acquire({"holder": "hub", "ttl_s": 10})["token"]
    lease.acquire({"holder": "hub", "ttl_s": 10})  # the same holder again: a successor, no loss
    assert ended == []
    token = lease.acquire({"holder": "hub", "ttl_s": 10})["token"]
    assert lease.release(token) == {"released": True, "holder": "hub"}
    assert ended == [("hub", "released")]


def test_a_failing_listener_still_ends_the_lease() -> None:
    def boom(holder: str, how: str) -> None:
        raise RuntimeError("listener bug")

    clock = StepClock()
    lease = LeaseManager(clock, 300, boom)
    lease.acquire({"holder": "hub", "ttl_s": 1})
    clock.t = 5
    assert lease.acquire({"holder": "other", "ttl_s": 1})["holder"] == "other"


@pytest.mark.parametrize("token", ["jeton-é", "\u2603" * 24, "\ud800"])
def test_a_token_with_any_characters_is_just_not_valid(token: str) -> None:
    lease, _ = manager()
    lease.acquire({"holder": "hub", "ttl_s": 10})
    with pytest.raises(LeaseDenied, match="not valid"):
        lease.verify(token)
