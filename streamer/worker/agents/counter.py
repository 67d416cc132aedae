"""Page-view counter agent: `customer-events-enriched` in micro-batches through
`stages.counting`, into the worker's page-view tables."""

from __future__ import annotations

from collections.abc import Sequence

from faust.types import EventT, StreamT

from streamer.worker.agents.batching import micro_batches
from streamer.worker.app import app, settings
from streamer.worker.channels import enriched_events
from streamer.worker.deadletter import send_dead_letter
from streamer.worker.runtime import run_batches, runtime
from streamer.worker.stages import counting
from streamer.worker.tables import (
    CurrentWindow,
    customer_page_views,
    page_views_total,
    page_views_windowed,
    window_of,
)

TABLES = counting.PageViewTables(
    total=page_views_total,
    windowed=CurrentWindow(page_views_windowed),
    per_customer=customer_page_views,
    window_of=window_of,
)


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
    """Gather a batch's page views, then apply at most one update per table entry."""
    await counting.count(batch, TABLES, send_dead_letter)
