"""Prediction agent: `customer-events-enriched` in micro-batches through `stages.prediction`,
with the serving models, the worker's profile store, producer and dead-letter topic."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

from faust.types import EventT, StreamT

from streamer.serving.models import ScoreCache
from streamer.worker.activity import activity
from streamer.worker.agents.batching import micro_batches
from streamer.worker.app import app, settings
from streamer.worker.channels import enriched_events, predictions
from streamer.worker.deadletter import send_dead_letter
from streamer.worker.outputs import publish
from streamer.worker.runtime import run_batches, runtime
from streamer.worker.stages import prediction as scoring

POLICY = scoring.ChallengerPolicy(settings.challenger.mode, settings.challenger.share)
# Per worker process: a customer's partition, and so its events, stay on one worker.
_cache = ScoreCache()


async def predict(stream: StreamT[bytes]) -> None:
    """Consume enriched events in micro-batches and score them."""
    await runtime.wait_started()
    await run_batches(stream, micro_batches(stream), predict_batch)


# With exactly_once, one agent counts and scores (streamer.worker.agents.exactly_once).
if settings.worker.processing_guarantee == "at_least_once":
    app.agent(enriched_events, name="predict")(predict)


async def predict_batch(batch: Sequence[EventT]) -> None:
    """Score one micro-batch: one `predict_proba` call per serving model."""
    serving = await runtime.models.wait_serving()
    await scoring.predict(
        batch,
        serving,
        policy=POLICY,
        store=runtime.store,
        publish=partial(publish, predictions),
        dead_letter=send_dead_letter,
        cache=_cache,
        activity=activity,
    )
