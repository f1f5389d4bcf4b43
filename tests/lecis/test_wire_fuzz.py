"""The decoders over the whole input space: anything in, a message or WireFormatError out, nothing else.

Inputs: raw bytes; JSON holding every code point (lone surrogates included),
integers of any size and deep nesting; and valid messages with one field
swapped for such a value, which reaches the checks deep inside each decoder.
Whatever decodes must encode again and decode to the same message.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lecis.commands import Command
from lecis.errors import WireFormatError
from lecis.wire import (
    Birth,
    Button,
    Data,
    Event,
    HubState,
    Message,
    ModuleState,
    Reply,
    Session,
    UnitState,
    decode,
    encode,
)
from tests.lecis.test_wire import MESSAGES, example_birth

CLASSES: list[type[Message] | type[Command]] = [
    UnitState, ModuleState, Data, Event, Reply, Button, HubState, Session, Birth, Command,
]
SAMPLES: list[dict[str, Any]] = [m.to_json() for m in MESSAGES] + [
    {"id": "c1", "cmd": "run", "args": {"seconds": 1}, "lease": "t"},
]
FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])

any_char = st.integers(0, 0x10FFFF).map(chr)  # surrogates included, which st.characters() leaves out
any_text = st.lists(any_char, max_size=12).map("".join)
any_int = st.one_of(st.integers(), st.integers(0, 4000).map(lambda k: 10**k), st.just(-(2**63)))
finite = st.floats(allow_nan=False, allow_infinity=False)
scalar = st.one_of(st.none(), st.booleans(), any_int, finite, any_text)
json_value = st.recursive(scalar, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(any_text, inner, max_size=4)), max_leaves=20)


class Nested:
    """`depth` arrays around `leaf`: written as text, since json.dumps would recurse that deep."""

    def __init__(self, depth: int, leaf: Any) -> None:
        self.depth, self.leaf = depth, leaf

    def text(self) -> str:
        return "[" * self.depth + json.dumps(self.leaf) + "]" * self.depth


deep = st.builds(Nested, st.integers(0, 3000), json_value)
MARK = "\x00nested\x00"


def as_bytes(value: Any) -> bytes:
    """JSON with ensure_ascii, so escapes carry lone surrogates as an outside client may send them."""
    inner: list[Nested] = []

    def mark(item: Any) -> Any:
        if isinstance(item, Nested):
            inner.append(item)
            return MARK
        raise TypeError(type(item).__name__)

    text = json.dumps(value, ensure_ascii=True, default=mark)
    for item in inner:
        text = text.replace(json.dumps(MARK), item.text(), 1)
    return text.encode()


def swap(sample: dict[str, Any], path: list[int], value: Any) -> dict[str, Any]:
    """`sample` with the leaf or branch picked by `path` replaced by `value`."""
    out = json.loads(json.dumps(sample))
    node: Any = out
    for step in path:
        children = list(node.keys()) if isinstance(node, dict) else list(range(len(node)))
        if not children:
            break
        key = children[step % len(children)]
        if not isinstance(node[key], (dict, list)) or step % 3 == 0:
            node[key] = value
            return out
        node = node[key]
    return out


def holds(cls: type[Message] | type[Command], payload: bytes) -> None:
    try:
        message = decode(cls, payload)  # type: ignore[arg-type]
    except WireFormatError:
        return
    again = decode(cls, encode(message))  # type: ignore[arg-type]
    assert again == message


@FUZZ
@given(st.sampled_from(CLASSES), st.binary(max_size=200))
def test_raw_bytes(cls: type[Message], payload: bytes) -> None:
    holds(cls, payload)


@FUZZ
@given(st.sampled_from(CLASSES), st.one_of(json_value, deep))
def test_any_json_value(cls: type[Message], value: Any) -> None:
    holds(cls, as_bytes(value))


@FUZZ
@given(st.sampled_from(CLASSES), st.sampled_from(SAMPLES),
       st.lists(st.integers(0, 50), min_size=1, max_size=6), st.one_of(json_value, deep))
def test_one_field_of_a_real_message_swapped(cls: type[Message], sample: dict[str, Any], path: list[int],
                                            value: Any) -> None:
    holds(cls, as_bytes(swap(sample, path, value)))


@FUZZ
@given(st.lists(st.integers(0, 50), min_size=1, max_size=8), json_value)
def test_a_birth_with_one_field_swapped(path: list[int], value: Any) -> None:
    holds(Birth, as_bytes(swap(example_birth().to_json(), path, value)))


def test_the_fuzz_reaches_lone_surrogates_huge_ints_and_depth() -> None:
    payloads = (b'{"id":"\\ud800","cmd":"STATUS"}', as_bytes({"seq": 10**400}), as_bytes(Nested(3000, 1)))
    for payload in payloads:
        for cls in CLASSES:
            holds(cls, payload)
