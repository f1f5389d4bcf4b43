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
    return LeaseManager(clock, 300, (lost if lost is not None else []).append), clock


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
])
def test_bad_acquire_arguments_name_the_parameter(args: dict[str, object], param: str) -> None:
    lease, _ = manager()
    with pytest.raises(CommandInvalid) as caught:
        lease.acquire(args)
    assert caught.value.param == param


async def test_watch_reports_the_lost_holder_once() -> None:
    lost: list[str] = []
    lease, _ = manager(lost)
    lease.acquire({"holder": "hub", "ttl_s": 1})
    task = asyncio.create_task(lease.watch(poll_s=0.25))
    for _ in range(20):
        await asyncio.sleep(0)
    task.cancel()
    assert lost == ["hub"]
