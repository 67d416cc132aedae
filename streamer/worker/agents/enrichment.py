"""Enrichment agent: validate raw events, count them once in the profile, republish enriched.

Per micro-batch: one Lua call updates every profile counter and dedup mark and returns
the updated profiles; first-seen events go to `customer-events-enriched`, duplicates are
counted and dropped, invalid events go to the dead-letter topic.

If the batch call fails for a reason other than Redis being away (a Lua error on one
customer's profile, say), the events are applied one by one: the one that fails goes to
the dead-letter topic and the events behind it are still counted.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Final

import orjson
import redis.exceptions
from faust.types import EventT, StreamT

from models.features import is_cancel_page
from streamer.store.profiles import COUNTER_FIELD, EventUpdate
from streamer.worker import metrics
from streamer.worker.agents.batching import micro_batches
from streamer.worker.app import app
from streamer.worker.channels import customer_events, enriched_events
from streamer.worker.deadletter import send_dead_letter
from streamer.worker.faust_patches.transactions import send_output
from streamer.worker.runtime import run_batches, runtime
from topics.codec import InvalidEvent, decode_event
from topics.events import CustomerEvent, EventType, utc_now_ms

STAGE: Final = "enrichment"


@app.agent(customer_events, name="enrich")
async def enrich(stream: StreamT[bytes]) -> None:
    """Consume `customer-events` in micro-batches."""
    await runtime.wait_started()
    await run_batches(stream, micro_batches(stream), enrich_batch)


async def enrich_batch(batch: Sequence[EventT]) -> None:
    """Validate, count once, join and republish one micro-batch (order kept per customer)."""
    started = time.perf_counter()
    valid: list[tuple[EventT, CustomerEvent]] = []
    for event in batch:
        try:
            valid.append((event, validate(event)))
        except InvalidEvent as invalid:
            await send_dead_letter(event, invalid.reason, "InvalidEvent", "validation")
        except Exception as exc:  # a validator bug must not stop the events behind
            await send_dead_letter(
                event, f"validation failed: {exc!r}"[:1024], type(exc).__name__, "validation"
            )
    updates = [
        EventUpdate(
            event_id=parsed.event_id,
            customer_id=parsed.customer_id,
            counter=COUNTER_FIELD[parsed.type],
            cancel_page=parsed.type == EventType.PAGE_VIEW and is_cancel_page(parsed.page),
            ts=parsed.ts,
            source=_position(event),
        )
        for event, parsed in valid
    ]
    try:
        profiles = await runtime.call_store(lambda: runtime.profiles.apply_events(updates))
    except redis.exceptions.ResponseError:
        profiles = await _apply_one_by_one(valid, updates)
    enriched_at = utc_now_ms()
    duplicates = 0
    # Straight to Faust's producer: `topic.send` adds a FutureMessage, callbacks and sensor
    # calls per message. Faust flushes the producer before it commits offsets, so this
    # batch's offsets are still committed only after its enriched events are delivered.
    # With exactly_once, each goes into the transaction of its event's partition instead.
    send, topic = app.producer.send, enriched_events.get_topic_name()
    transactional = app.in_transaction
    for (event, parsed), profile in zip(valid, profiles, strict=True):
        if profile is None:
            duplicates += 1
            continue
        if profile is _FAILED:
            continue
        value = orjson.dumps(
            {
                "event": parsed.model_dump(mode="json"),
                "profile": profile,
                "enriched_at": enriched_at,
            }
        )
        key = event.message.key or parsed.customer_id.encode()
        if transactional:
            await send_output(event, topic, key, value)
        else:
            await send(topic, key, value, None, None, None)
    metrics.EVENTS.labels(STAGE, "enriched").inc(len(valid) - duplicates)
    metrics.EVENTS.labels(STAGE, "duplicate").inc(duplicates)
    metrics.BATCH_SIZE.labels(STAGE).observe(len(batch))
    metrics.BATCH_SECONDS.labels(STAGE).observe(time.perf_counter() - started)


# Marks an event whose profile update failed (and was dead-lettered) in a fallback pass.
_FAILED: dict[str, str] = {}


async def _apply_one_by_one(
    valid: Sequence[tuple[EventT, CustomerEvent]], updates: Sequence[EventUpdate]
) -> list[dict[str, str] | None]:
    """Apply events singly after a batch call failed; dead-letter the ones that fail.

    Events the failed batch call did apply carry a dedup mark with their own position,
    so applying them again returns their profile without counting them twice.
    """
    results: list[dict[str, str] | None] = []
    for (event, _), update in zip(valid, updates, strict=True):
        try:
            (profile,) = await runtime.call_store(
                lambda update=update: runtime.profiles.apply_events([update])  # type: ignore[misc]
            )
        except redis.exceptions.ResponseError as exc:
            await send_dead_letter(
                event, f"profile update failed: {exc}", type(exc).__name__, STAGE
            )
            results.append(_FAILED)
            continue
        results.append(profile)
    return results


def _position(event: EventT) -> str:
    message = event.message
    return f"{message.topic}/{message.partition}/{message.offset}"


def validate(event: EventT) -> CustomerEvent:
    """Decode one raw message; the key, when present, must be the event's customer_id."""
    parsed = decode_event(event.value)
    key = event.message.key
    if key is not None:
        try:
            key_text = bytes(key).decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidEvent("message key is not valid UTF-8") from None
        if key_text != parsed.customer_id:
            raise InvalidEvent(
                f"message key {key_text[:64]!r} does not match customer_id "
                f"{parsed.customer_id[:64]!r}"
            )
    return parsed
