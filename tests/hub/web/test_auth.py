"""Sign-in: a wrong password says nothing about which part was wrong; repeated failures wait, per client."""

from __future__ import annotations

import pytest

from hub.web.auth import FREE_FAILURES, Authenticator
from hub.web.errors import ApiError
from hub.web.passwords import hash_password, verify_password
from hub.web.settings import User
from tests.edge.gpio_fixtures import ManualClock

USERS = (User("ada", "operator", hash_password("right")), User("tom", "viewer", hash_password("tom's")))


def refused(auth: Authenticator, client: str, name: str, password: str) -> ApiError:
    with pytest.raises(ApiError) as caught:
        auth.login_sync(client, name, password)
    return caught.value


def test_the_hash_is_argon2_and_never_the_password() -> None:
    digest = hash_password("right")
    assert digest.startswith("$argon2id$") and "right" not in digest
    assert verify_password(digest, "right") and not verify_password(digest, "wrong")
    assert not verify_password(None, "right") and not verify_password("$argon2id$garbage", "right")


def test_wrong_password_and_unknown_user_answer_the_same() -> None:
    auth = Authenticator(USERS, ManualClock(), 3600)
    wrong = refused(auth, "a", "ada", "nope")
    unknown = refused(auth, "b", "nobody", "right")
    assert (wrong.status, wrong.message, wrong.field) == (unknown.status, unknown.message, unknown.field)
    assert wrong.status == 401 and wrong.field is None


def test_repeated_failures_are_slowed_per_client_and_a_success_resets() -> None:
    clock = ManualClock()
    auth = Authenticator(USERS, clock, 3600)
    for _ in range(FREE_FAILURES):
        assert refused(auth, "10.0.0.9", "ada", "nope").status == 401
    throttled = refused(auth, "10.0.0.9", "ada", "right")  # even the right password waits its turn
    assert throttled.status == 429 and throttled.retry_after and throttled.retry_after > 0
    assert auth.login_sync("10.0.0.8", "ada", "right").user == "ada"  # another client is not slowed
    clock._t += throttled.retry_after
    assert refused(auth, "10.0.0.9", "ada", "nope").status == 401
    second = refused(auth, "10.0.0.9", "ada", "right")
    assert second.status == 429 and second.retry_after and second.retry_after > throttled.retry_after
    clock._t += 120
    assert auth.login_sync("10.0.0.9", "ada", "right").role == "operator"
    assert refused(auth, "10.0.0.9", "ada", "nope").status == 401  # reset: no wait after one failure


def test_a_session_ends_after_being_idle_and_on_logout() -> None:
    clock = ManualClock()
    auth = Authenticator(USERS, clock, 60)
    who = auth.login_sync("c", "tom", "tom's")
    assert who.role == "viewer" and not who.operator and who.csrf != who.token
    clock._t += 59
    assert auth.session(who.token) is who
    clock._t += 61
    assert auth.session(who.token) is None
    again = auth.login_sync("c", "tom", "tom's")
    auth.logout(again.token)
    assert auth.session(again.token) is None and auth.session("") is None and auth.session(None) is None


async def test_parallel_tries_from_one_client_cannot_outrun_the_wait() -> None:
    import asyncio

    auth = Authenticator(USERS, ManualClock(), 3600)
    answers = await asyncio.gather(*(auth.login("10.0.0.7", "ada", "nope") for _ in range(20)),
                                   return_exceptions=True)
    statuses = sorted(a.status for a in answers if isinstance(a, ApiError))
    assert statuses.count(401) == 1 and statuses.count(429) == 19
    assert (await auth.login("10.0.0.7", "ada", "right")).user == "ada"
