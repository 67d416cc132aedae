"""Page-view counting of one micro-batch of enriched events: per page (total and windowed)
and per customer, each event once, also when it is read again after a crash.

A batch's page views are gathered per table key first, so a busy page costs one table read
and at most one write per batch rather than one per view. Per-page counts are keyed
`"{partition}:{page}"`: each entry then belongs to exactly one partition of
`customer-events-enriched`, the one whose changelog holds it, and no repartition topic is
needed (a `group_by(page)` would add a full topic round trip per event). A page's count is
the sum over partitions. Customers are the topic's keys, so theirs are too.

Every entry keeps, next to its count, the source offsets it covers (`streamer.worker.tally`):
at least once, events counted before a crash but not committed are read again, and an
event enriched again after a crash is published once more; both copies carry the source
position of the event's first copy and are skipped.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from streamer.worker import metrics, tally
from streamer.worker.event_context import acting_as
from streamer.worker.faust_patches.transactions import fence
from streamer.worker.stages import DeadLetterSink, E
from topics.events import EventType, Stage
from topics.wire import Malformed, parse_enriched

K = TypeVar("K", bound=Hashable)


class CountTable(Protocol):
    """A table of `tally` values by key (a Faust table, the current window of a windowed
    one, or a dict)."""

    def __getitem__(self, key: str, /) -> Any: ...

    def __setitem__(self, key: str, value: Any, /) -> None: ...


def one_window(event: Any) -> Hashable:
    """A `window_of` for tables without windows."""
    return None


@dataclass(frozen=True, slots=True)
class PageViewTables:
    """Where page views are counted."""

    total: CountTable  # per page key, all time
    windowed: CountTable  # per page key, in the window of the current event
    per_customer: CountTable  # per customer id
    window_of: Callable[[Any], Hashable] = one_window  # the window an event counts in


@dataclass(slots=True)
class Sources(Generic[E]):
    """The source positions of a batch's page views for one table entry, in stream order,
    and the entry's first event (a Faust table writes its changelog to the current event's
    partition, and a windowed one picks the window by its time)."""

    owner: E
    positions: list[tally.Source] = field(default_factory=list)


@dataclass(slots=True)
class PageViews(Generic[E]):
    """A batch's page views gathered per table entry."""

    per_page: dict[str, Sources[E]] = field(default_factory=dict)
    per_window: dict[tuple[str, Hashable], Sources[E]] = field(default_factory=dict)
    per_customer: dict[str, Sources[E]] = field(default_factory=dict)


def page_key(partition: int, page: str) -> str:
    """Table key of a page's count on one partition."""
    return f"{partition}:{page}"


def split_page_key(key: str) -> tuple[int, str]:
    """(partition, page) of a table key."""
    partition, _, page = key.partition(":")
    return int(partition), page


def _note(entries: dict[K, Sources[E]], key: K, event: E, source: tally.Source) -> None:
    sources = entries.get(key)
    if sources is None:
        entries[key] = Sources(event, [source])
    else:
        sources.positions.append(source)


async def gather_page_views(
    batch: Sequence[E], window_of: Callable[[E], Hashable], dead_letter: DeadLetterSink[E]
) -> PageViews[E]:
    """Gather a batch's page views per entry; dead-letter the enriched events that cannot be
    read."""
    views: PageViews[E] = PageViews()
    for event in batch:
        try:
            enriched = parse_enriched(event.value)
            if enriched.type != EventType.PAGE_VIEW:
                continue
            if enriched.page is None:
                raise Malformed("enriched event", KeyError("page"))
        except Malformed as bad:
            await dead_letter(event, bad.reason, bad.error_type, Stage.COUNTING)
            continue
        key = page_key(event.message.partition, enriched.page)
        _note(views.per_page, key, event, enriched.source)
        _note(views.per_window, (key, window_of(event)), event, enriched.source)
        _note(views.per_customer, enriched.customer_id, event, enriched.source)
    return views


def _apply(table: CountTable, entries: Iterable[tuple[str, Sources[E]]]) -> tuple[int, int]:
    """Add each entry's events not counted yet: (events counted, events skipped)."""
    counted = skipped = 0
    for key, sources in entries:
        # In the worker the owners are Faust events (tests pass stand-ins).
        with acting_as(sources.owner):  # type: ignore[arg-type]
            value, added, already = tally.add(table[key], sources.positions)
            if added:
                table[key] = value
        counted += added
        skipped += already
    return counted, skipped


async def count(batch: Sequence[E], tables: PageViewTables, dead_letter: DeadLetterSink[E]) -> None:
    """Gather a batch's page views, then apply at most one update per table entry."""
    started = time.perf_counter()
    views = await gather_page_views(batch, tables.window_of, dead_letter)
    # With exactly_once, no table write once a rebalance began: its transaction is aborted.
    fence.check()
    counted, skipped = _apply(tables.total, views.per_page.items())
    _apply(tables.windowed, ((key, sources) for (key, _), sources in views.per_window.items()))
    _apply(tables.per_customer, views.per_customer.items())
    metrics.EVENTS.labels(Stage.COUNTING, "counted").inc(counted)
    metrics.EVENTS.labels(Stage.COUNTING, "already_counted").inc(skipped)
    metrics.BATCH_SECONDS.labels(Stage.COUNTING).observe(time.perf_counter() - started)
