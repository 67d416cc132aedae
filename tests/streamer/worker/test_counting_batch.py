"""Counting of a micro-batch of enriched events into plain dict tables."""

from __future__ import annotations

import asyncio
from collections import defaultdict

from streamer.worker.stages.counting import PageViewTables, count, page_key, split_page_key
from tests.support.fakes import FakeEvent, Sinks, received
from topics.events import Stage
from topics.wire import enriched_event

TS = 1_700_000_000_000


def enriched(
    customer: str, kind: str = "page_view", page: str = "/pricing", partition: int = 0
) -> FakeEvent:
    event = {
        "event_id": f"{customer}-{kind}-{page}",
        "type": kind,
        "customer_id": customer,
        "ts": TS,
    }
    if kind == "page_view":
        event["page"] = page
    return received(enriched_event(event, {}, TS), customer.encode(), partition)


def test_page_views_are_summed_per_page_and_partition_and_per_customer() -> None:
    tables = PageViewTables(defaultdict(int), defaultdict(int), defaultdict(int))
    sinks = Sinks()
    batch = [
        enriched("alice", page="/pricing", partition=0),
        enriched("alice", page="/pricing", partition=0),
        enriched("bob", page="/pricing", partition=1),
        enriched("bob", page="/cancel", partition=1),
        enriched("bob", kind="complaint", partition=1),  # not a page view
    ]
    asyncio.run(count(batch, tables, sinks.dead_letter))

    expected = {"0:/pricing": 2, "1:/pricing": 1, "1:/cancel": 1}
    assert dict(tables.total) == expected
    assert dict(tables.windowed) == expected
    assert dict(tables.per_customer) == {"alice": 2, "bob": 2}
    assert sinks.letters == []

    # A second batch adds to the counts.
    asyncio.run(count([enriched("alice", partition=0)], tables, sinks.dead_letter))
    assert tables.total["0:/pricing"] == 3 and tables.per_customer["alice"] == 3


def test_unreadable_enriched_events_are_dead_lettered_and_the_rest_counted() -> None:
    tables = PageViewTables(defaultdict(int), defaultdict(int), defaultdict(int))
    sinks = Sinks()
    garbage = received(b"{nope", b"alice")
    no_page = received(
        enriched_event(
            {"event_id": "e", "type": "page_view", "customer_id": "alice", "ts": TS}, {}, TS
        ),
        b"alice",
    )
    asyncio.run(count([garbage, enriched("alice"), no_page], tables, sinks.dead_letter))

    assert [(letter[0], letter[2], letter[3]) for letter in sinks.letters] == [
        (garbage, "JSONDecodeError", Stage.COUNTING),
        (no_page, "KeyError", Stage.COUNTING),
    ]
    assert sinks.letters[1][1] == "malformed enriched event: KeyError('page')"
    assert dict(tables.total) == {"0:/pricing": 1}


def test_page_keys_split_back() -> None:
    assert split_page_key(page_key(3, "/a:b")) == (3, "/a:b")
