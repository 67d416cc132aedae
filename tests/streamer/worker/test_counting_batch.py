"""Counting of a micro-batch of enriched events into plain dict tables: each page view once,
also when it is read again after a crash."""

from __future__ import annotations

import asyncio
import itertools
from collections import defaultdict
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

from faust.streams import current_event

from streamer.worker.stages.counting import PageViewTables, count, page_key, split_page_key
from streamer.worker.tally import Tally, count_of
from tests.support.fakes import FakeEvent, FakeMessage, Sinks, received
from topics.events import Stage
from topics.wire import enriched_event

TS = 1_700_000_000_000
WINDOW_S = 60.0

_source_offsets = itertools.count()


def enriched(
    customer: str,
    kind: str = "page_view",
    page: str = "/pricing",
    partition: int = 0,
    source: tuple[int, int] | None = None,
    at: float = 0.0,
) -> FakeEvent:
    """An enriched event read from `partition`, made from the source message `source`
    (partition, offset; by default the next offset of source partition 0), sent at `at` s."""
    event = {
        "event_id": f"{customer}-{kind}-{page}",
        "type": kind,
        "customer_id": customer,
        "ts": TS,
    }
    if kind == "page_view":
        event["page"] = page
    source_partition, offset = source if source is not None else (0, next(_source_offsets))
    value = enriched_event(event, {}, TS, ("customer-events", source_partition, offset))
    read = received(value, customer.encode(), partition)
    read.message.timestamp = at
    return read


def republished(event: FakeEvent, at: float | None = None) -> FakeEvent:
    """The same source message enriched again after a crash: a new record, new offset."""
    message = event.message
    timestamp = message.timestamp if at is None else at
    copy = FakeMessage(message.key, message.topic, message.partition, timestamp=timestamp)
    return FakeEvent(event.value, copy)


def window_of(event: Any) -> Hashable:
    return int(event.message.timestamp // WINDOW_S)


class Windows:
    """A windowed table: item access reads and writes the current event's window."""

    def __init__(self) -> None:
        self.values: dict[tuple[str, Hashable], Tally] = defaultdict(int)

    def __getitem__(self, key: str) -> Tally:
        return self.values[key, window_of(current_event())]

    def __setitem__(self, key: str, value: Tally) -> None:
        self.values[key, window_of(current_event())] = value

    def counts(self) -> dict[tuple[str, Hashable], int]:
        return {key: count_of(value) for key, value in self.values.items() if count_of(value)}


@dataclass
class Tables:
    total: defaultdict[str, Tally] = field(default_factory=lambda: defaultdict(int))
    windowed: Windows = field(default_factory=Windows)
    per_customer: defaultdict[str, Tally] = field(default_factory=lambda: defaultdict(int))

    def for_stage(self) -> PageViewTables:
        return PageViewTables(self.total, self.windowed, self.per_customer, window_of)


def counts(table: Any) -> dict[str, int]:
    return {key: count_of(value) for key, value in table.items() if count_of(value)}


def run(batch: Sequence[FakeEvent], tables: Tables, sinks: Sinks | None = None) -> None:
    asyncio.run(count(batch, tables.for_stage(), (sinks or Sinks()).dead_letter))


def test_page_views_are_summed_per_page_and_partition_and_per_customer() -> None:
    tables = Tables()
    sinks = Sinks()
    batch = [
        enriched("alice", page="/pricing", partition=0),
        enriched("alice", page="/pricing", partition=0),
        enriched("bob", page="/pricing", partition=1),
        enriched("bob", page="/cancel", partition=1),
        enriched("bob", kind="complaint", partition=1),  # not a page view
    ]
    run(batch, tables, sinks)

    expected = {"0:/pricing": 2, "1:/pricing": 1, "1:/cancel": 1}
    assert counts(tables.total) == expected
    assert tables.windowed.counts() == {(key, 0): n for key, n in expected.items()}
    assert counts(tables.per_customer) == {"alice": 2, "bob": 2}
    assert sinks.letters == []

    # A second batch adds to the counts.
    run([enriched("alice", partition=0)], tables)
    assert count_of(tables.total["0:/pricing"]) == 3
    assert count_of(tables.per_customer["alice"]) == 3


def test_a_batch_read_again_is_not_counted_again() -> None:
    tables = Tables()
    batch = [enriched("alice"), enriched("bob", page="/cancel"), enriched("alice")]
    run(batch, tables)
    before = (dict(tables.total), dict(tables.windowed.values), dict(tables.per_customer))

    run(batch, tables)  # redelivered after a crash: the same records

    after = (dict(tables.total), dict(tables.windowed.values), dict(tables.per_customer))
    assert after == before
    assert counts(tables.total) == {"0:/pricing": 2, "0:/cancel": 1}


def test_an_event_enriched_again_is_skipped_even_in_a_later_batch_or_window() -> None:
    tables = Tables()
    first = enriched("alice", at=10.0)
    later = enriched("alice", at=70.0)  # the next window
    run([first, later], tables)
    # Enrichment crashed before its commit: `first` is published once more, stamped with
    # its source message's time, beside a new event.
    run([republished(first), enriched("alice", at=75.0)], tables)

    assert counts(tables.total) == {"0:/pricing": 3}
    assert counts(tables.per_customer) == {"alice": 3}
    assert tables.windowed.counts() == {("0:/pricing", 0): 1, ("0:/pricing", 1): 2}


def test_copies_within_one_batch_count_once() -> None:
    tables = Tables()
    first = enriched("alice")
    run([first, republished(first), enriched("alice"), republished(first)], tables)
    assert counts(tables.total) == {"0:/pricing": 2}
    assert counts(tables.per_customer) == {"alice": 2}


def test_offsets_are_kept_per_source_partition() -> None:
    """Unkeyed source messages of one customer arrive from several source partitions."""
    tables = Tables()
    run([enriched("alice", source=(2, 500)), enriched("alice", source=(1, 7))], tables)
    run([enriched("alice", source=(1, 8)), enriched("alice", source=(2, 500))], tables)
    assert counts(tables.per_customer) == {"alice": 3}
    assert tables.per_customer["alice"] == {"count": 3, "through": {"1": 8, "2": 500}}


def test_tables_rebuilt_from_a_partial_changelog_catch_up_exactly() -> None:
    """A crash after some entries' changelog records were written and before others: each
    entry holds its count with its offsets, so redelivery completes exactly the others."""
    batch = [enriched("alice"), enriched("bob"), enriched("alice", page="/cancel")]
    counted = Tables()
    run(batch, counted)
    # Rebuilt: the total entries reached the changelog, the customers' did not, and only
    # one window entry did.
    rebuilt = Tables()
    rebuilt.total.update(counted.total)
    window_entry = ("0:/cancel", 0)
    rebuilt.windowed.values[window_entry] = counted.windowed.values[window_entry]

    run([*batch, enriched("bob")], rebuilt)

    assert counts(rebuilt.total) == {"0:/pricing": 3, "0:/cancel": 1}
    assert counts(rebuilt.per_customer) == {"alice": 2, "bob": 2}
    assert rebuilt.windowed.counts() == {("0:/pricing", 0): 3, ("0:/cancel", 0): 1}


def test_counts_of_earlier_releases_are_read_and_added_to() -> None:
    tables = Tables()
    tables.total["0:/pricing"] = 40  # a plain int, as older changelogs hold
    tables.per_customer["alice"] = 4
    run([enriched("alice")], tables)
    assert count_of(tables.total["0:/pricing"]) == 41
    assert count_of(tables.per_customer["alice"]) == 5


def test_unreadable_enriched_events_are_dead_lettered_and_the_rest_counted() -> None:
    tables = Tables()
    sinks = Sinks()
    garbage = received(b"{nope", b"alice")
    no_page = received(
        enriched_event(
            {"event_id": "e", "type": "page_view", "customer_id": "alice", "ts": TS}, {}, TS
        ),
        b"alice",
    )
    run([garbage, enriched("alice"), no_page], tables, sinks)

    assert [(letter[0], letter[2], letter[3]) for letter in sinks.letters] == [
        (garbage, "JSONDecodeError", Stage.COUNTING),
        (no_page, "KeyError", Stage.COUNTING),
    ]
    assert sinks.letters[1][1] == "malformed enriched event: KeyError('page')"
    assert counts(tables.total) == {"0:/pricing": 1}


def test_page_keys_split_back() -> None:
    assert split_page_key(page_key(3, "/a:b")) == (3, "/a:b")
