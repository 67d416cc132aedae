"""Hypothesis strategies of malformed raw events, each with the reason the DLQ must give."""

from __future__ import annotations

import time
from dataclasses import dataclass

import orjson
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from topics.codec import MAX_EVENT_BYTES
from topics.events import MIN_EVENT_TS_MS

DAY_MS = 24 * 3600 * 1000
# Fixed at import: strategies must not change between hypothesis' runs.
FUTURE_MS = int(time.time() * 1000) + 2 * DAY_MS


@dataclass(frozen=True)
class Case:
    """One malformed message and the words its dead letter's reason must contain."""

    category: str
    key: bytes | None
    value: bytes
    reason: str


def _base(n: int, kind: str = "page_view") -> dict[str, object]:
    event: dict[str, object] = {
        "event_id": f"bad-{n}",
        "type": kind,
        "customer_id": f"fuzz-{n}",
        "ts": 1795341600000,
    }
    if kind == "page_view":
        event["page"] = "/pricing"
    return event


def _key(event: dict[str, object]) -> bytes:
    return str(event.get("customer_id", "fuzz")).encode()


_int64 = st.integers(-(2**63), 2**63 - 1)  # what JSON encoders produce
_not_a_string = st.one_of(
    _int64,
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    st.none(),
    st.lists(_int64, max_size=3),
    st.dictionaries(st.text(max_size=5), _int64, max_size=2),
)
_not_a_number = st.one_of(st.text(max_size=10), st.booleans(), st.lists(_int64, max_size=3))


@st.composite
def invalid_json(draw: st.DrawFn, n: int) -> Case:
    junk = draw(st.binary(max_size=40))
    return Case("invalid-json", b"fuzz", b"{not json %d " % n + junk, "invalid JSON")


@st.composite
def not_utf8_value(draw: st.DrawFn, n: int) -> Case:
    junk = draw(st.binary(max_size=20))
    return Case("non-utf8-value", b"fuzz", b'{"event_id": "\xff\xfe%d' % n + junk, "invalid JSON")


@st.composite
def not_an_object(draw: st.DrawFn, n: int) -> Case:
    value = draw(
        st.one_of(
            st.lists(st.integers(-(2**63), 2**63 - 1), max_size=3),
            st.integers(-(2**63), 2**63 - 1),
            st.text(max_size=10),
            st.booleans(),
        )
    )
    return Case("not-an-object", b"fuzz", orjson.dumps([n, value]), "event must be a JSON object")


@st.composite
def wrong_type(draw: st.DrawFn, n: int) -> Case:
    kind = draw(st.sampled_from(["page_view", "order"]))
    event = _base(n, kind)
    name = draw(
        st.sampled_from(
            ["event_id", "customer_id", "page"] if kind == "page_view" else ["event_id", "amount"]
        )
    )
    event[name] = draw(_not_a_number if name == "amount" else _not_a_string)
    key = b"fuzz" if name == "customer_id" else _key(event)
    return Case("wrong-type", key, orjson.dumps(event), f"field '{name}'")


@st.composite
def missing_field(draw: st.DrawFn, n: int) -> Case:
    event = _base(n)
    name = draw(st.sampled_from(["event_id", "customer_id", "ts", "page", "type"]))
    key = _key(event)
    del event[name]
    return Case("missing-field", key, orjson.dumps(event), f"missing field '{name}'")


@st.composite
def unknown_type(draw: st.DrawFn, n: int) -> Case:
    event = _base(n)
    event["type"] = draw(
        st.text(max_size=12).filter(
            lambda t: t not in ("page_view", "complaint", "support_call", "order")
        )
    )
    return Case("unknown-type", _key(event), orjson.dumps(event), "unknown event type")


@st.composite
def oversized(draw: st.DrawFn, n: int) -> Case:
    event = _base(n)
    event["padding"] = "x" * draw(st.integers(MAX_EVENT_BYTES, MAX_EVENT_BYTES + 8192))
    return Case("oversized", _key(event), orjson.dumps(event), "payload too large")


@st.composite
def bad_key(draw: st.DrawFn, n: int) -> Case:
    event = _base(n, draw(st.sampled_from(["complaint", "support_call"])))
    key = b"\xff" + draw(st.binary(max_size=10))
    return Case("non-utf8-key", key, orjson.dumps(event), "message key is not valid UTF-8")


@st.composite
def absurd_ts(draw: st.DrawFn, n: int) -> Case:
    event = _base(n)
    event["ts"] = draw(
        st.one_of(
            st.integers(-(2**62), MIN_EVENT_TS_MS - 1),
            st.integers(FUTURE_MS, 2**62),
            st.sampled_from(
                [
                    "1970-01-01T00:00:00Z",
                    "2999-01-01T00:00:00Z",
                    "2026-11-22T10:00:00",  # no zone
                    "yesterday",
                    "",
                ]
            ),
            st.booleans(),
            st.floats(allow_nan=False, allow_infinity=False),
        )
    )
    return Case("absurd-ts", _key(event), orjson.dumps(event), "field 'ts'")


@st.composite
def empty_customer(draw: st.DrawFn, n: int) -> Case:
    event = _base(n, draw(st.sampled_from(["complaint", "order"])))
    event["customer_id"] = ""
    return Case("empty-customer", b"fuzz", orjson.dumps(event), "field 'customer_id'")


@st.composite
def key_mismatch(draw: st.DrawFn, n: int) -> Case:
    event = _base(n, "complaint")
    other = draw(st.text(min_size=1, max_size=10).filter(lambda t: t != event["customer_id"]))
    return Case("key-mismatch", other.encode(), orjson.dumps(event), "does not match customer_id")


CATEGORIES = (
    invalid_json,
    not_utf8_value,
    not_an_object,
    wrong_type,
    missing_field,
    unknown_type,
    oversized,
    bad_key,
    absurd_ts,
    empty_customer,
    key_mismatch,
)


def generate_cases(examples: int) -> list[Case]:
    """Malformed messages drawn by hypothesis (reproducibly), each with a unique number."""
    cases: list[Case] = []

    @settings(
        max_examples=examples,
        database=None,
        derandomize=True,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(st.data())
    def collect(data: st.DataObject) -> None:
        category = data.draw(st.sampled_from(CATEGORIES))
        # The number only makes ids unique; it does not change what is drawn.
        cases.append(data.draw(category(len(cases))))

    collect()
    return cases
