"""Enrichment of a micro-batch, with an in-memory profile store: what is counted, forwarded,
dropped as a duplicate and dead-lettered."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import orjson
import redis.exceptions

from streamer.store.profiles import EventUpdate
from streamer.worker.stages.enrichment import enrich, plan_enrichment
from tests.support.fakes import FakeEvent, MemoryProfileStore, Sinks, received
from topics.events import Stage
from topics.wire import parse_enriched

TS = 1_700_000_000_000


def event(event_id: str, customer: str, kind: str = "page_view", **extra: object) -> bytes:
    fields: dict[str, object] = {"event_id": event_id, "type": kind, "customer_id": customer}
    if kind == "page_view":
        fields["page"] = "/pricing"
    return orjson.dumps({**fields, "ts": TS, **extra})


def run(batch: Sequence[FakeEvent], store: MemoryProfileStore, sinks: Sinks) -> None:
    asyncio.run(enrich(batch, store, sinks.publish, sinks.dead_letter, now=lambda: 42))


def test_invalid_events_are_dead_lettered_with_their_reason_and_the_rest_counted() -> None:
    good = [received(event("e1", "alice"), b"alice"), received(event("e2", "bob"), None)]
    bad = [
        received(b"{nope", b"alice"),
        received(event("e3", "alice", "refund"), b"alice"),
        received(orjson.dumps({"event_id": "e4", "type": "complaint", "customer_id": "x"}), b"x"),
        received(event("e5", "alice", "complaint"), b"\xff\xfe"),
    ]
    store, sinks = MemoryProfileStore(), Sinks()
    run([good[0], *bad, good[1]], store, sinks)

    reasons = [(letter[0], letter[3]) for letter in sinks.letters]
    assert reasons == [(e, Stage.VALIDATION) for e in bad]
    texts = [letter[1] for letter in sinks.letters]
    assert texts[0].startswith("invalid JSON")
    assert texts[1] == "unknown event type 'refund'"
    assert texts[2] == "missing field 'ts'"
    assert texts[3] == "message key is not valid UTF-8"
    assert {letter[2] for letter in sinks.letters} == {"InvalidEvent"}
    # The valid ones are counted once and forwarded in order, keyed by the customer.
    assert [(o[0], o[1]) for o in sinks.outputs] == [(good[0], b"alice"), (good[1], b"bob")]
    assert store.profiles["alice"]["page_views"] == "1"
    assert store.profiles["bob"]["last_event_ts"] == str(TS)


def test_forwarded_value_is_the_event_with_the_profile_it_joined() -> None:
    store, sinks = MemoryProfileStore(), Sinks()
    store.profiles["alice"] = {"plan": "premium", "complaints": "2"}
    run([received(event("e1", "alice", "complaint"), b"alice")], store, sinks)

    ((_, _, value),) = sinks.outputs
    enriched = parse_enriched(value)
    assert enriched.event == {
        "event_id": "e1",
        "type": "complaint",
        "customer_id": "alice",
        "ts": TS,
    }
    assert enriched.profile == {
        "plan": "premium",
        "complaints": "3",
        "last_event_ts": str(TS),
        "event_seq": "1",  # the profile's update sequence rides along
    }
    assert enriched.enriched_at == 42
    assert orjson.loads(value)["source"]["topic"] == "customer-events"


def test_a_key_that_is_not_the_customer_is_refused() -> None:
    store, sinks = MemoryProfileStore(), Sinks()
    mismatch = received(event("e1", "alice"), b"mallory")
    run([mismatch], store, sinks)

    assert sinks.letters == [
        (
            mismatch,
            "message key 'mallory' does not match customer_id 'alice'",
            "InvalidEvent",
            Stage.VALIDATION,
        )
    ]
    assert sinks.outputs == [] and store.profiles == {}


def test_a_duplicate_is_counted_once_and_not_forwarded_but_a_redelivery_is() -> None:
    store, sinks = MemoryProfileStore(), Sinks()
    first = received(event("e1", "alice"), b"alice")
    run([first], store, sinks)
    duplicate = received(event("e1", "alice"), b"alice")  # same event_id, another message
    redelivered = FakeEvent(first.value, first.message)  # the same message read again
    run([duplicate, redelivered], store, sinks)

    assert [o[0] for o in sinks.outputs] == [first, redelivered]
    assert store.profiles["alice"]["page_views"] == "1"
    # Both copies name the message they came from, so counting can tell them apart.
    sources = {parse_enriched(o[2]).source for o in sinks.outputs}
    assert sources == {(first.message.partition, first.message.offset)}
    assert sinks.letters == []


def test_plan_says_what_each_event_changes() -> None:
    cancel = received(event("e1", "alice", page="/account/cancel"), b"alice", partition=3)
    plan = plan_enrichment([cancel, received(event("e2", "bob", "order"), None)])
    assert plan.updates == [
        EventUpdate(
            "e1", "alice", "page_views", True, TS, f"customer-events/3/{cancel.message.offset}"
        ),
        EventUpdate("e2", "bob", "orders", False, TS, plan.updates[1].source),
    ]
    assert plan.refused == []


class FailingForOneCustomer(MemoryProfileStore):
    """A store whose script fails on one customer's profile (e.g. a WRONGTYPE key)."""

    async def apply_events(self, updates: Sequence[EventUpdate]) -> list[dict[str, str] | None]:
        if any(update.customer_id == "broken" for update in updates):
            raise redis.exceptions.ResponseError("WRONGTYPE Operation against a key")
        return await super().apply_events(updates)


def test_a_failing_profile_update_is_dead_lettered_and_the_others_applied_one_by_one() -> None:
    store, sinks = FailingForOneCustomer(), Sinks()
    broken = received(event("e2", "broken"), b"broken")
    run(
        [received(event("e1", "alice"), b"alice"), broken, received(event("e3", "bob"), b"bob")],
        store,
        sinks,
    )

    assert [(letter[0], letter[2], letter[3]) for letter in sinks.letters] == [
        (broken, "ResponseError", Stage.ENRICHMENT)
    ]
    assert sinks.letters[0][1].startswith("profile update failed: WRONGTYPE")
    assert [o[1] for o in sinks.outputs] == [b"alice", b"bob"]
    assert [len(batch) for batch in store.batches] == [1, 1]  # the two that applied, singly
