"""The hot-path encoding of the service's topic values holds to the contract: every value
built validates against its pydantic model and its JSON Schema, and reads back as built."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any

import jsonschema
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from models.features import FEATURE_NAMES
from topics import wire
from topics.codec import validate_event
from topics.events import (
    MIN_EVENT_TS_MS,
    DeadLetter,
    EnrichedEvent,
    EventType,
    PredictionRecord,
    Stage,
)
from topics.schema import all_schemas

EVENT_SCHEMA = json.loads((Path(__file__).parents[2] / "topics" / "event.schema.json").read_text())
SCHEMAS = all_schemas()

# Text orjson can encode (no lone surrogates), as every decoded JSON string is.
text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)
ids = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=40)
epoch_ms = st.integers(MIN_EVENT_TS_MS, int(time.time() * 1000))


@st.composite
def events(draw: st.DrawFn) -> dict[str, Any]:
    """An event as enrichment forwards it: validated, then in its JSON form."""
    kind = draw(st.sampled_from(list(EventType)))
    raw: dict[str, Any] = {
        "event_id": draw(ids),
        "customer_id": draw(ids),
        "type": kind.value,
        "ts": draw(epoch_ms),
    }
    if kind == EventType.PAGE_VIEW:
        raw["page"] = "/" + draw(text)
    if kind == EventType.ORDER and draw(st.booleans()):
        raw["amount"] = draw(st.floats(0, 1e6, allow_nan=False))
    return validate_event(raw).model_dump(mode="json")


profiles = st.dictionaries(ids, text, max_size=6)  # Redis hash fields and values
features = st.fixed_dictionaries(
    {name: st.floats(-1e9, 1e9, allow_nan=False) for name in FEATURE_NAMES}
)


def _conforms(value: bytes, schema: dict[str, Any]) -> None:
    jsonschema.Draft202012Validator(schema).validate(orjson.loads(value))


@given(events(), profiles, epoch_ms)
def test_enriched_event_matches_its_model_and_schemas(
    event: dict[str, Any], profile: dict[str, str], enriched_at: int
) -> None:
    value = wire.enriched_event(event, profile, enriched_at)
    model = EnrichedEvent.model_validate_json(value)
    assert (model.event, model.profile, model.enriched_at) == (event, profile, enriched_at)
    _conforms(value, SCHEMAS["customer-events-enriched"])
    # The event it carries is a valid event of the committed contract.
    jsonschema.Draft202012Validator(EVENT_SCHEMA).validate(model.event)


@given(events(), profiles, epoch_ms)
def test_enriched_event_reads_back(
    event: dict[str, Any], profile: dict[str, str], enriched_at: int
) -> None:
    read = wire.parse_enriched(wire.enriched_event(event, profile, enriched_at))
    assert read == wire.Enriched(
        event,
        profile,
        enriched_at,
        event["event_id"],
        event["customer_id"],
        event["type"],
        event["ts"],
        event.get("page"),
    )


@given(events(), profiles, epoch_ms, st.integers(0, 2**31 - 1), st.integers(0, 2**63 - 1))
def test_enriched_event_names_its_source_message(
    event: dict[str, Any], profile: dict[str, str], enriched_at: int, partition: int, offset: int
) -> None:
    value = wire.enriched_event(event, profile, enriched_at, ("customer-events", partition, offset))
    model = EnrichedEvent.model_validate_json(value)
    assert model.source is not None
    assert (model.source.topic, model.source.partition, model.source.offset) == (
        "customer-events",
        partition,
        offset,
    )
    _conforms(value, SCHEMAS["customer-events-enriched"])
    assert wire.parse_enriched(value).source == (partition, offset)


def test_enriched_event_bytes() -> None:
    event = {"event_id": "e-1", "customer_id": "c-42", "ts": 1_700_000_000_000}
    value = wire.enriched_event({**event, "type": "complaint"}, {"complaints": "2"}, 5)
    assert value == (
        b'{"event":{"event_id":"e-1","customer_id":"c-42","ts":1700000000000,'
        b'"type":"complaint"},"profile":{"complaints":"2"},"enriched_at":5}'
    )


@pytest.mark.parametrize(
    ("raw", "error_type"),
    [
        (b"{nope", "JSONDecodeError"),
        (b"[1, 2]", "TypeError"),
        (b'{"profile": {}}', "KeyError"),
        (
            b'{"event": {"event_id": "e", "customer_id": "c", "type": "order"}, "profile": {}}',
            "KeyError",
        ),
        (
            b'{"event": {"event_id": "e", "customer_id": "c", "type": "order", "ts": "soon"},'
            b' "profile": {}}',
            "ValueError",
        ),
        (
            b'{"event": {"event_id": "e", "customer_id": "c", "type": "order", "ts": 1},'
            b' "profile": [1]}',
            "TypeError",
        ),
    ],
)
def test_unreadable_enriched_events_are_malformed(raw: bytes, error_type: str) -> None:
    with pytest.raises(wire.Malformed) as caught:
        wire.parse_enriched(raw)
    assert caught.value.error_type == error_type
    assert caught.value.reason.startswith(f"malformed enriched event: {error_type}(")


predictions = st.builds(
    wire.Prediction,
    event_id=ids,
    customer_id=ids,
    event_type=st.sampled_from([kind.value for kind in EventType]),
    features=features,
    churn_score=st.floats(0.0, 1.0),
    model_version=ids,
    model_role=st.sampled_from(["champion", "challenger"]),
    event_ts=epoch_ms,
    scored_at=epoch_ms,
)


@given(predictions)
def test_prediction_record_matches_its_model_and_schema(prediction: wire.Prediction) -> None:
    value = wire.prediction_record(*prediction)
    model = PredictionRecord.model_validate_json(value)
    assert wire.Prediction(**model.model_dump()) == prediction
    _conforms(value, SCHEMAS["churn-predictions"])


@given(predictions)
def test_prediction_record_reads_back(prediction: wire.Prediction) -> None:
    assert wire.parse_prediction(wire.prediction_record(*prediction)) == prediction


def test_prediction_record_keys_in_contract_order() -> None:
    value = wire.prediction_record("e", "c", "order", {"orders": 1.0}, 0.25, "v2", "champion", 7, 9)
    assert list(orjson.loads(value)) == [
        "event_id",
        "customer_id",
        "event_type",
        "features",
        "churn_score",
        "model_version",
        "model_role",
        "event_ts",
        "scored_at",
    ]
    with pytest.raises(wire.Malformed, match="KeyError"):
        wire.parse_prediction(b'{"event_id": "e"}')


dead_letters = st.fixed_dictionaries(
    {
        "reason": text,
        "error_type": ids,
        "stage": st.sampled_from(list(Stage)),
        "topic": ids,
        "partition": st.integers(0, 1000),
        "offset": st.integers(0, 2**62),
        "failed_at": epoch_ms,
        "key": st.none() | st.binary(max_size=20) | text.map(str.encode),
        "payload": st.binary(max_size=60) | text.map(str.encode),
    }
)


def _utf8(raw: bytes | None) -> str | None:
    try:
        return None if raw is None else raw.decode("utf-8")
    except UnicodeDecodeError:
        return None


@given(dead_letters)
def test_dead_letter_matches_its_model_and_schema(fields: dict[str, Any]) -> None:
    value = wire.dead_letter(**fields)
    model = DeadLetter.model_validate_json(value)
    assert model.stage == fields["stage"] and model.reason == fields["reason"]
    assert (model.source.topic, model.source.partition, model.source.offset) == (
        fields["topic"],
        fields["partition"],
        fields["offset"],
    )
    _conforms(value, SCHEMAS["customer-events-dlq"])


@given(dead_letters)
def test_dead_letter_reads_back_with_the_original_bytes(fields: dict[str, Any]) -> None:
    record = wire.parse_dead_letter(wire.dead_letter(**fields))
    assert record == {
        "reason": fields["reason"],
        "error_type": fields["error_type"],
        "stage": fields["stage"].value,
        "source": {
            "topic": fields["topic"],
            "partition": fields["partition"],
            "offset": fields["offset"],
        },
        "failed_at": fields["failed_at"],
        "key": _utf8(fields["key"]),
        "payload": _utf8(fields["payload"]),
        "payload_b64": base64.b64encode(fields["payload"]).decode(),
    }
    assert base64.b64decode(record["payload_b64"]) == fields["payload"]


def test_a_dead_letter_is_a_json_object() -> None:
    with pytest.raises(wire.Malformed, match="TypeError"):
        wire.parse_dead_letter(b"[1]")
    with pytest.raises(wire.Malformed, match="JSONDecodeError"):
        wire.parse_dead_letter(b"{nope")
