"""Page-view counting of one micro-batch of enriched events (already free of duplicates):
per page (total and windowed) and per customer.

A batch's counts are summed first, so a busy page costs one table write per batch rather
than one per view. Per-page counts are keyed `"{partition}:{page}"`: each entry then
belongs to exactly one partition of `customer-events-enriched`, the one whose changelog
holds it, and no repartition topic is needed (a `group_by(page)` would add a full topic
round trip per event). A page's count is the sum over partitions.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol

from streamer.worker import metrics
from streamer.worker.event_context import acting_as
from streamer.worker.faust_patches.transactions import fence
from streamer.worker.stages import DeadLetterSink, E
from topics.events import EventType, Stage
from topics.wire import Malformed, parse_enriched


class CountTable(Protocol):
    """A table of counts: `table[key] += n` (a Faust table, a windowed one, or a dict)."""

    def __getitem__(self, key: str, /) -> Any: ...

    def __setitem__(self, key: str, value: Any, /) -> None: ...


@dataclass(frozen=True, slots=True)
class PageViewTables:
    """Where page views are counted."""

    total: CountTable  # per page key, all time
    windowed: CountTable  # per page key, in tumbling windows
    per_customer: CountTable  # per customer id


@dataclass(slots=True)
class PageViewCounts(Generic[E]):
    """A batch's page views summed per page key and per customer, each key with an event
    of its partition (a Faust table writes its changelog to the current event's)."""

    per_page: Counter[str] = field(default_factory=Counter)
    per_customer: Counter[str] = field(default_factory=Counter)
    page_owner: dict[str, E] = field(default_factory=dict)
    customer_owner: dict[str, E] = field(default_factory=dict)


def page_key(partition: int, page: str) -> str:
    """Table key of a page's count on one partition."""
    return f"{partition}:{page}"


def split_page_key(key: str) -> tuple[int, str]:
    """(partition, page) of a table key."""
    partition, _, page = key.partition(":")
    return int(partition), page


async def sum_page_views(batch: Sequence[E], dead_letter: DeadLetterSink[E]) -> PageViewCounts[E]:
    """Sum a batch's page views; dead-letter the enriched events that cannot be read."""
    counts: PageViewCounts[E] = PageViewCounts()
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
        counts.per_page[key] += 1
        counts.per_customer[enriched.customer_id] += 1
        counts.page_owner[key] = counts.customer_owner[enriched.customer_id] = event
    return counts


async def count(batch: Sequence[E], tables: PageViewTables, dead_letter: DeadLetterSink[E]) -> None:
    """Sum a batch's page views, then apply one update per table key."""
    started = time.perf_counter()
    counts = await sum_page_views(batch, dead_letter)
    # With exactly_once, no table write once a rebalance began: its transaction is aborted.
    fence.check()
    for key, views in counts.per_page.items():
        # In the worker the owners are Faust events (tests pass stand-ins).
        with acting_as(counts.page_owner[key]):  # type: ignore[arg-type]
            tables.total[key] += views
            tables.windowed[key] += views
    for customer, views in counts.per_customer.items():
        with acting_as(counts.customer_owner[customer]):  # type: ignore[arg-type]
            tables.per_customer[customer] += views
    metrics.EVENTS.labels(Stage.COUNTING, "counted").inc(counts.per_page.total())
    metrics.BATCH_SECONDS.labels(Stage.COUNTING).observe(time.perf_counter() - started)
