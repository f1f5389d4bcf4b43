"""Object names and file patterns: which files a watch entry takes, and what the bucket accepts as a name."""

from __future__ import annotations

from fnmatch import fnmatchcase

MAX_NAME_BYTES = 1024  # the bucket's limit for an object name, in UTF-8 bytes


def matches(patterns: tuple[str, ...], rel: str, basename: str) -> bool:
    """A pattern with a / is matched against the path inside the folder, any other against the file name."""
    return any(fnmatchcase(rel if "/" in p else basename, p) for p in patterns)


def name_problem(name: str) -> str | None:
    """Why the bucket cannot hold a file under this name, or None."""
    try:
        encoded = name.encode("utf-8")
    except UnicodeEncodeError:
        return "its name is not valid UTF-8 (bytes the bucket cannot name); rename the file"
    if "\r" in name or "\n" in name:
        return "its name holds a line break, which the bucket refuses; rename the file"
    if len(encoded) > MAX_NAME_BYTES:
        return f"its object name would be {len(encoded)} bytes, above the bucket's {MAX_NAME_BYTES}"
    return None


def object_name(prefix: str, unit: str, session_id: str, rel: str) -> str:
    """gs://BUCKET/PREFIX/UNIT/SESSION_ID/RELATIVE_PATH, without the bucket."""
    return "/".join(p for p in (prefix, unit, session_id, rel) if p)


def session_prefix(prefix: str, unit: str, session_id: str) -> str:
    return object_name(prefix, unit, session_id, "") + "/"
