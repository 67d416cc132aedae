"""JSON encoding (orjson) and validation of raw event bytes."""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import TypeAdapter, ValidationError

from topics.events import CustomerEvent

# Larger values are rejected before parsing: nothing legitimate is this big, and an
# oversized payload must not cost the worker its memory.
MAX_EVENT_BYTES = 64 * 1024

_event_adapter: TypeAdapter[CustomerEvent] = TypeAdapter(CustomerEvent)


class InvalidEvent(ValueError):
    """A raw event failed validation; `reason` says precisely why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def encode(value: Any) -> bytes:
    """Serialise a value (dicts, lists, pydantic models) to JSON bytes."""
    if hasattr(value, "model_dump"):
        value = value.model_dump(mode="json")
    return orjson.dumps(value)


def decode_event(raw: bytes | bytearray | memoryview | None) -> CustomerEvent:
    """Parse and validate one raw event value, raising `InvalidEvent` with a precise reason."""
    if raw is None:
        raise InvalidEvent("empty message value")
    if len(raw) > MAX_EVENT_BYTES:
        raise InvalidEvent(f"payload too large: {len(raw)} bytes > {MAX_EVENT_BYTES}")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidEvent(f"invalid JSON: {exc}") from None
    return validate_event(data)


def validate_event(data: object) -> CustomerEvent:
    """Validate an already-parsed event, raising `InvalidEvent` with a precise reason."""
    if not isinstance(data, dict):
        raise InvalidEvent(f"event must be a JSON object, got {type(data).__name__}")
    try:
        return _event_adapter.validate_python(data)
    except ValidationError as exc:
        raise InvalidEvent(describe_validation_error(exc, data)) from None


def describe_validation_error(exc: ValidationError, data: dict[str, Any]) -> str:
    """One readable line for the first problem pydantic found."""
    error = exc.errors(include_url=False)[0]
    kind = error["type"]
    if kind == "union_tag_invalid":
        return f"unknown event type {data.get('type')!r}"
    if kind == "union_tag_not_found":
        return "missing field 'type'"
    loc = [part for part in error["loc"] if not _is_union_tag(part, data)]
    field = ".".join(str(part) for part in loc) or "event"
    if kind == "missing":
        return f"missing field {field!r}"
    message = error["msg"].removeprefix("Value error, ")
    return f"field {field!r}: {message}"


def _is_union_tag(part: object, data: dict[str, Any]) -> bool:
    return isinstance(part, str) and part == data.get("type") and part not in data
