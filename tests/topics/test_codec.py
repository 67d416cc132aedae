"""The event contract: what is accepted, what is refused and with which reason."""

from __future__ import annotations

import orjson
import pytest

from topics.codec import MAX_EVENT_BYTES, InvalidEvent, decode_event
from topics.events import EventType, PageView

VALID = {
    "event_id": "e-1",
    "type": "page_view",
    "customer_id": "c-42",
    "ts": "2026-11-22T10:00:00Z",
    "page": "/pricing",
}


def raw(**changes: object) -> bytes:
    event = {**VALID, **changes}
    return orjson.dumps({k: v for k, v in event.items() if v is not ...})


def test_page_view_parses_and_normalises_rfc3339_ts_to_epoch_ms() -> None:
    event = decode_event(raw())
    assert isinstance(event, PageView)
    assert event.ts == 1795341600000
    assert event.page == "/pricing"


def test_integer_epoch_ms_and_extra_fields_are_carried_along() -> None:
    event = decode_event(raw(ts=1795341600123, campaign="winter"))
    assert event.ts == 1795341600123
    assert event.model_dump()["campaign"] == "winter"


@pytest.mark.parametrize("kind", ["complaint", "support_call"])
def test_types_without_extra_fields(kind: str) -> None:
    event = decode_event(raw(type=kind, page=...))
    assert event.type == EventType(kind)


def test_order_amount_is_optional_and_numeric() -> None:
    assert decode_event(raw(type="order", page=...)).amount is None  # type: ignore[union-attr]
    assert decode_event(raw(type="order", page=..., amount=12)).amount == 12.0  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"{not json", "invalid JSON"),
        (b"[1, 2]", "event must be a JSON object, got list"),
        (b'"text"', "event must be a JSON object, got str"),
        (raw(type="refund"), "unknown event type 'refund'"),
        (raw(type=...), "missing field 'type'"),
        (raw(customer_id=...), "missing field 'customer_id'"),
        (raw(event_id=...), "missing field 'event_id'"),
        (raw(ts=...), "missing field 'ts'"),
        (raw(page=...), "missing field 'page'"),
        (raw(customer_id=42), "field 'customer_id': Input should be a valid string"),
        (raw(customer_id=""), "field 'customer_id': String should have at least 1 character"),
        (raw(event_id=7), "field 'event_id': Input should be a valid string"),
        (raw(page="pricing"), "field 'page'"),
        (raw(ts=True), "field 'ts'"),
        (raw(ts=1700000), "before 2000-01-01"),
        (raw(ts="2026-11-22T10:00:00"), "time zone"),
        (raw(ts="yesterday"), "not an RFC 3339 timestamp"),
        (raw(ts=99_999_999_999_999), "in the future"),
        (
            raw(type="order", page=..., amount="12"),
            "field 'amount': Input should be a valid number",
        ),
    ],
)
def test_bad_events_are_refused_with_a_precise_reason(payload: bytes, reason: str) -> None:
    with pytest.raises(InvalidEvent) as refused:
        decode_event(payload)
    assert reason in refused.value.reason


def test_oversized_payload_is_refused_before_parsing() -> None:
    payload = raw(padding="x" * MAX_EVENT_BYTES)
    with pytest.raises(InvalidEvent, match="payload too large"):
        decode_event(payload)


def test_empty_value_is_refused() -> None:
    with pytest.raises(InvalidEvent, match="empty message value"):
        decode_event(None)
