"""Prediction agent: score enriched events with the serving model, one call per batch.

The feature row comes from `models.features.feature_row`, the function training uses.
Each batch writes the newest score per customer to Redis in one Lua call and publishes
one prediction record per event to `churn-predictions`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Final

import numpy as np
import orjson
from faust.types import EventT, StreamT

from models.features import FEATURE_NAMES, feature_row
from streamer import metrics
from streamer.activity import activity
from streamer.agents.batching import micro_batches
from streamer.app import app
from streamer.channels import enriched_events, predictions
from streamer.deadletter import send_dead_letter
from streamer.profiles import ScoreUpdate
from streamer.runtime import runtime
from topics.events import utc_now_ms

STAGE: Final = "prediction"


@app.agent(enriched_events, name="predict")
async def predict(stream: StreamT[bytes]) -> None:
    """Consume enriched events in micro-batches and score them."""
    await runtime.wait_started()
    async for batch in micro_batches(stream):
        await predict_batch(batch)


async def predict_batch(batch: Sequence[EventT]) -> None:
    """Score one micro-batch with a single `predict_proba` call."""
    model = await runtime.models.wait()
    started = time.perf_counter()
    rows: list[list[float]] = []
    scored: list[tuple[EventT, dict[str, object]]] = []
    for event in batch:
        try:
            data = orjson.loads(event.value)
            rows.append(feature_row(data["profile"]))
            scored.append((event, data["event"]))
        except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
            await send_dead_letter(
                event, f"malformed enriched event: {exc!r}", type(exc).__name__, STAGE
            )
    if not rows:
        return
    scores = model.score(np.asarray(rows, dtype=np.float64))
    scored_at = utc_now_ms()
    newest: dict[str, ScoreUpdate] = {}
    records: list[tuple[bytes, bytes]] = []
    for (event, inner), row, score in zip(scored, rows, scores.tolist(), strict=True):
        customer_id = str(inner["customer_id"])
        event_ts = int(inner["ts"])  # type: ignore[call-overload]
        newest[customer_id] = ScoreUpdate(customer_id, score, model.version, scored_at, event_ts)
        records.append(
            (
                event.message.key or customer_id.encode(),
                orjson.dumps(
                    {
                        "event_id": inner["event_id"],
                        "customer_id": customer_id,
                        "event_type": inner["type"],
                        "features": dict(zip(FEATURE_NAMES, row, strict=True)),
                        "churn_score": score,
                        "model_version": model.version,
                        "model_role": "champion",
                        "event_ts": event_ts,
                        "scored_at": scored_at,
                    }
                ),
            )
        )
        activity.record(customer_id, str(inner["type"]), score, model.version, scored_at)
        metrics.END_TO_END_SECONDS.observe(max(0.0, (scored_at - event_ts) / 1000))
    updates = list(newest.values())
    await runtime.call_store(lambda: runtime.profiles.write_scores(updates))
    for key, value in records:
        await predictions.send(key=key, value=value)
    histogram = metrics.CHURN_SCORE.labels(model.version)
    for score in scores.tolist():
        histogram.observe(score)
    metrics.EVENTS.labels(STAGE, "scored").inc(len(rows))
    metrics.BATCH_SIZE.labels(STAGE).observe(len(batch))
    metrics.BATCH_SECONDS.labels(STAGE).observe(time.perf_counter() - started)
