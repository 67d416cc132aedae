"""Page-view counter agent: counts first-seen page views per page (total and windowed)
and per customer, from `customer-events-enriched` (already free of duplicates).

A batch's counts are summed first, so a busy page costs one table write per batch
rather than one per view.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from typing import Final

import orjson
from faust.types import EventT, StreamT

from streamer.worker import metrics
from streamer.worker.agents.batching import micro_batches
from streamer.worker.app import app, settings
from streamer.worker.channels import enriched_events
from streamer.worker.deadletter import send_dead_letter
from streamer.worker.event_context import acting_as
from streamer.worker.faust_patches.transactions import fence
from streamer.worker.runtime import run_batches, runtime
from streamer.worker.tables import (
    customer_page_views,
    page_key,
    page_views_total,
    page_views_windowed,
)

STAGE: Final = "counting"


async def count_page_views(stream: StreamT[bytes]) -> None:
    """Consume enriched events in micro-batches and update the page-view tables."""
    await runtime.wait_started()
    make_room_for_changelogs()
    await run_batches(stream, micro_batches(stream), count_batch)


# With exactly_once, one agent counts and scores (streamer.worker.agents.exactly_once).
if settings.worker.processing_guarantee == "at_least_once":
    app.agent(enriched_events, name="count-page-views")(count_page_views)


def make_room_for_changelogs() -> None:
    """Table writes queue their changelog messages in Faust's producer buffer; past its
    default 100 pending, Faust halts every stream and drains it one message per wake-up.
    One batch queues up to three per event (page total, page window, customer)."""
    buffer = app.producer.buffer
    buffer.max_messages = max(buffer.max_messages, 4 * settings.worker.batch_size)


async def count_batch(batch: Sequence[EventT]) -> None:
    """Sum a batch's page views, then apply one update per table key."""
    started = time.perf_counter()
    per_page: Counter[str] = Counter()
    per_customer: Counter[str] = Counter()
    # An event of each key's partition: the table writes its changelog there.
    page_owner: dict[str, EventT] = {}
    customer_owner: dict[str, EventT] = {}
    for event in batch:
        try:
            data = orjson.loads(event.value)
            inner = data["event"]
            if inner["type"] != "page_view":
                continue
            key = page_key(event.message.partition, inner["page"])
            customer = inner["customer_id"]
        except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
            await send_dead_letter(
                event, f"malformed enriched event: {exc!r}", type(exc).__name__, STAGE
            )
            continue
        per_page[key] += 1
        per_customer[customer] += 1
        page_owner[key] = customer_owner[customer] = event
    # With exactly_once, no table write once a rebalance began: its transaction is aborted.
    fence.check()
    for key, views in per_page.items():
        with acting_as(page_owner[key]):
            page_views_total[key] += views
            page_views_windowed[key] += views
    for customer, views in per_customer.items():
        with acting_as(customer_owner[customer]):
            customer_page_views[customer] += views
    metrics.EVENTS.labels(STAGE, "counted").inc(sum(per_page.values()))
    metrics.BATCH_SECONDS.labels(STAGE).observe(time.perf_counter() - started)
