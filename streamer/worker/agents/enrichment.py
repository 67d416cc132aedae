"""Enrichment agent: `customer-events` in micro-batches through `stages.enrichment`, with the
worker's profile store, producer and dead-letter topic."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

from faust.types import EventT, StreamT

from streamer.worker.agents.batching import micro_batches
from streamer.worker.app import app
from streamer.worker.channels import customer_events, enriched_events
from streamer.worker.deadletter import send_dead_letter
from streamer.worker.outputs import publish
from streamer.worker.runtime import run_batches, runtime
from streamer.worker.stages import enrichment


@app.agent(customer_events, name="enrich")
async def enrich(stream: StreamT[bytes]) -> None:
    """Consume `customer-events` in micro-batches."""
    await runtime.wait_started()
    await run_batches(stream, micro_batches(stream), enrich_batch)


async def enrich_batch(batch: Sequence[EventT]) -> None:
    """Validate, count once, join and republish one micro-batch."""
    await enrichment.enrich(
        batch, runtime.store, partial(publish, enriched_events), send_dead_letter
    )
