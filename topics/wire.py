"""The service's own topic values as bytes: built and read on the worker's hot path.

`topics.events` models these values with pydantic (and gives them a JSON Schema); the
worker builds and reads one per event, so here they are plain dicts through orjson, with
no pydantic. `tests/topics/test_wire.py` holds each builder to its model.

- `customer-events-enriched`: `enriched_event` / `parse_enriched` (`EnrichedEvent`)
- `churn-predictions`: `prediction_record` / `parse_prediction` (`PredictionRecord`)
- `customer-events-dlq`: `dead_letter` / `parse_dead_letter` (`DeadLetter`)
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any, NamedTuple

import orjson

from topics.events import CHAMPION

# What a value of the wrong shape raises while it is read: bad JSON (a ValueError), a
# missing field, a field of the wrong type.
_SHAPE_ERRORS = (ValueError, KeyError, TypeError)


class Malformed(ValueError):
    """A value on one of the service's topics that cannot be read; `reason` says why and
    `error_type` names the error behind it (both go into the dead letter)."""

    def __init__(self, what: str, cause: Exception) -> None:
        super().__init__(f"malformed {what}: {cause!r}")
        self.reason = str(self)
        self.error_type = type(cause).__name__


class Enriched(NamedTuple):
    """A value of `customer-events-enriched`, with the event fields the agents read."""

    event: dict[str, Any]
    profile: dict[str, Any]
    enriched_at: int
    event_id: str
    customer_id: str
    type: str
    ts: int
    page: str | None  # page views only
    # (partition, offset) of the `customer-events` message it came from; None on records
    # of releases before the field.
    source: tuple[int, int] | None = None


def enriched_event(
    event: Mapping[str, Any],
    profile: Mapping[str, Any],
    enriched_at: int,
    source: tuple[str, int, int] | None = None,
) -> bytes:
    """A first-seen event (JSON form, `ts` in epoch ms) and the profile it was joined with,
    with the topic, partition and offset of the message it was read from."""
    value: dict[str, Any] = {"event": event, "profile": profile, "enriched_at": enriched_at}
    if source is not None:
        topic, partition, offset = source
        value["source"] = {"topic": topic, "partition": partition, "offset": offset}
    return orjson.dumps(value)


def parse_enriched(raw: bytes | bytearray | memoryview) -> Enriched:
    """Read an enriched event; raises `Malformed` if it lacks what the agents read."""
    try:
        data = orjson.loads(raw)
        event, profile = data["event"], data["profile"]
        if not isinstance(profile, dict):
            raise TypeError(f"profile is {type(profile).__name__}, not an object")
        return Enriched(
            event,
            profile,
            data.get("enriched_at", 0),
            str(event["event_id"]),
            str(event["customer_id"]),
            str(event["type"]),
            int(event["ts"]),
            event.get("page"),
            _source(data.get("source")),
        )
    except _SHAPE_ERRORS as exc:
        raise Malformed("enriched event", exc) from None


def _source(source: Any) -> tuple[int, int] | None:
    if source is None:
        return None
    return int(source["partition"]), int(source["offset"])


class Prediction(NamedTuple):
    """A value of `churn-predictions`."""

    event_id: str
    customer_id: str
    event_type: str
    features: dict[str, float]
    churn_score: float
    model_version: str
    model_role: str
    event_ts: int
    scored_at: int


def prediction_record(
    event_id: str,
    customer_id: str,
    event_type: str,
    features: Mapping[str, float],
    churn_score: float,
    model_version: str,
    model_role: str,
    event_ts: int,
    scored_at: int,
) -> bytes:
    """One scored event, the features behind its score and the model that made it."""
    return orjson.dumps(
        {
            "event_id": event_id,
            "customer_id": customer_id,
            "event_type": event_type,
            "features": features,
            "churn_score": churn_score,
            "model_version": model_version,
            "model_role": model_role,
            "event_ts": event_ts,
            "scored_at": scored_at,
        }
    )


def parse_prediction(raw: bytes | bytearray | memoryview) -> Prediction:
    """Read a prediction record; raises `Malformed` if a field is missing."""
    try:
        data = orjson.loads(raw)
        return Prediction(
            data["event_id"],
            data["customer_id"],
            data["event_type"],
            data["features"],
            data["churn_score"],
            data["model_version"],
            data.get("model_role", CHAMPION),
            data["event_ts"],
            data["scored_at"],
        )
    except _SHAPE_ERRORS as exc:
        raise Malformed("prediction record", exc) from None


def dead_letter(
    *,
    reason: str,
    error_type: str,
    stage: str,
    topic: str,
    partition: int,
    offset: int,
    failed_at: int,
    key: bytes | bytearray | str | None,
    payload: bytes | bytearray,
) -> bytes:
    """An unprocessable message read at topic/partition/offset, with its original key and
    bytes (as text where they are UTF-8, and the bytes in base64 for an exact replay)."""
    return orjson.dumps(
        {
            "reason": reason,
            "error_type": error_type,
            "stage": stage,
            "source": {"topic": topic, "partition": partition, "offset": offset},
            "failed_at": failed_at,
            "key": _text(key),
            "payload": _text(payload),
            "payload_b64": base64.b64encode(payload).decode("ascii"),
        }
    )


def parse_dead_letter(raw: bytes | bytearray | memoryview) -> dict[str, Any]:
    """Read a dead letter as a dict (records written by hand or by older releases may lack
    fields); raises `Malformed` unless it is a JSON object."""
    try:
        record = orjson.loads(raw)
        if not isinstance(record, dict):
            raise TypeError(f"a dead letter is a JSON object, not {type(record).__name__}")
    except _SHAPE_ERRORS as exc:
        raise Malformed("dead letter", exc) from None
    return record


def _text(raw: bytes | bytearray | str | None) -> str | None:
    if raw is None or isinstance(raw, str):
        return raw
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
