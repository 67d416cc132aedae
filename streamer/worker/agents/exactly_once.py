"""With exactly_once, one agent counts and scores each micro-batch of enriched events.

Faust acknowledges a message two agents read only once the second one is done with it.
Two agents over `customer-events-enriched` (counting and prediction, as at least once)
would let a commit take what the faster one wrote for a message (prediction records or
changelog records) into a transaction that does not hold the message's offset; after a
crash the message is read again and those records are written, and committed, twice. One
agent doing both keeps a message's writes and its offset in the same transaction.
"""

from __future__ import annotations

from collections.abc import Sequence

from faust.types import EventT, StreamT

from streamer.worker.agents.batching import micro_batches
from streamer.worker.agents.counter import count_batch, make_room_for_changelogs
from streamer.worker.agents.prediction import predict_batch
from streamer.worker.app import app, settings
from streamer.worker.channels import enriched_events
from streamer.worker.runtime import run_batches, runtime


async def count_and_predict(stream: StreamT[bytes]) -> None:
    """Consume enriched events in micro-batches; count them, then score them."""
    await runtime.wait_started()
    make_room_for_changelogs()
    # A batch holds the commit gate while it runs: wait for a model outside of it.
    await runtime.models.wait_serving()
    await run_batches(stream, micro_batches(stream), count_and_predict_batch)


async def count_and_predict_batch(batch: Sequence[EventT]) -> None:
    await count_batch(batch)
    await predict_batch(batch)


if settings.worker.processing_guarantee == "exactly_once":
    app.agent(enriched_events, name="count-and-predict")(count_and_predict)
