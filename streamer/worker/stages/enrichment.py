"""Enrichment of one micro-batch: validate raw events, count them once in their profiles,
publish each first-seen event with the profile it joined.

One store call updates every profile counter and dedup mark of the batch and returns the
updated profiles; duplicates are counted and dropped, invalid events are dead-lettered.
If the batch call fails for a reason other than Redis being away (a Lua error on one
customer's profile, say), the events are applied one by one: the one that fails is
dead-lettered and the events behind it are still counted.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic

import redis.exceptions

from models.features import is_cancel_page
from streamer.store.profiles import COUNTER_FIELD, EventUpdate, ProfileStore
from streamer.worker import metrics
from streamer.worker.stages import DeadLetterSink, E, Output, Publish, Received, position
from topics import wire
from topics.codec import InvalidEvent, decode_event
from topics.events import CustomerEvent, EventType, Stage, utc_now_ms


@dataclass(slots=True)
class Plan(Generic[E]):
    """A batch sorted out: the valid events (in order) with their profile updates, and the
    refused ones with their reason and error type."""

    events: list[E] = field(default_factory=list)
    parsed: list[CustomerEvent] = field(default_factory=list)
    updates: list[EventUpdate] = field(default_factory=list)
    refused: list[tuple[E, str, str]] = field(default_factory=list)


def plan_enrichment(batch: Sequence[E]) -> Plan[E]:
    """Validate every event of a batch and say what each valid one changes in its profile."""
    plan: Plan[E] = Plan()
    for event in batch:
        try:
            parsed = validate(event)
        except InvalidEvent as invalid:
            plan.refused.append((event, invalid.reason, "InvalidEvent"))
            continue
        except Exception as exc:  # a validator bug must not stop the events behind
            plan.refused.append((event, f"validation failed: {exc!r}"[:1024], type(exc).__name__))
            continue
        plan.events.append(event)
        plan.parsed.append(parsed)
        plan.updates.append(
            EventUpdate(
                event_id=parsed.event_id,
                customer_id=parsed.customer_id,
                counter=COUNTER_FIELD[parsed.type],
                cancel_page=parsed.type == EventType.PAGE_VIEW and is_cancel_page(parsed.page),
                ts=parsed.ts,
                source=position(event),
            )
        )
    return plan


def validate(event: Received) -> CustomerEvent:
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


async def enrich(
    batch: Sequence[E],
    store: ProfileStore,
    publish: Publish[E],
    dead_letter: DeadLetterSink[E],
    now: Callable[[], int] = utc_now_ms,
) -> None:
    """Validate, count once, join and publish one micro-batch (order kept per customer)."""
    started = time.perf_counter()
    plan = plan_enrichment(batch)
    for event, reason, error_type in plan.refused:
        await dead_letter(event, reason, error_type, Stage.VALIDATION)
    try:
        profiles = await store.apply_events(plan.updates)
    except redis.exceptions.ResponseError:
        profiles = await _apply_one_by_one(plan, store, dead_letter)
    enriched_at = now()
    duplicates = 0
    outputs: list[Output[E]] = []
    for event, parsed, profile in zip(plan.events, plan.parsed, profiles, strict=True):
        if profile is None:
            duplicates += 1
            continue
        if profile is _FAILED:
            continue
        message = event.message
        value = wire.enriched_event(
            parsed.model_dump(mode="json"),
            profile,
            enriched_at,
            (message.topic, message.partition, message.offset),
        )
        outputs.append((event, event.message.key or parsed.customer_id.encode(), value))
    await publish(outputs)
    metrics.EVENTS.labels(Stage.ENRICHMENT, "enriched").inc(len(plan.events) - duplicates)
    metrics.EVENTS.labels(Stage.ENRICHMENT, "duplicate").inc(duplicates)
    metrics.BATCH_SIZE.labels(Stage.ENRICHMENT).observe(len(batch))
    metrics.BATCH_SECONDS.labels(Stage.ENRICHMENT).observe(time.perf_counter() - started)


# Marks an event whose profile update failed (and was dead-lettered) in a fallback pass.
_FAILED: dict[str, str] = {}


async def _apply_one_by_one(
    plan: Plan[E], store: ProfileStore, dead_letter: DeadLetterSink[E]
) -> list[dict[str, str] | None]:
    """Apply events singly after a batch call failed; dead-letter the ones that fail.

    Events the failed batch call did apply carry a dedup mark with their own position,
    so applying them again returns their profile without counting them twice.
    """
    results: list[dict[str, str] | None] = []
    for event, update in zip(plan.events, plan.updates, strict=True):
        try:
            (profile,) = await store.apply_events([update])
        except redis.exceptions.ResponseError as exc:
            await dead_letter(
                event, f"profile update failed: {exc}", type(exc).__name__, Stage.ENRICHMENT
            )
            results.append(_FAILED)
            continue
        results.append(profile)
    return results
