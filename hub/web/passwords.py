"""Password hashes: argon2id through argon2-cffi; a plain password is never written anywhere."""

from __future__ import annotations

import functools

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

_HASHER = PasswordHasher()


@functools.cache
def _dummy() -> str:
    """Verified when the user name is unknown, so an unknown name takes as long as a wrong password."""
    return _HASHER.hash("labedge-no-such-user")


def hash_password(password: str) -> str:
    return _HASHER.hash(password)


def verify_password(digest: str | None, password: str) -> bool:
    """True when `password` matches; False otherwise (an unknown user costs the same time)."""
    try:
        return _HASHER.verify(digest or _dummy(), password) and digest is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False
