"""Prediction agent: score enriched events with the serving models, one call per model per batch.

The feature row comes from `models.features.feature_row`, the function training uses.
Each batch writes the newest served score per customer to Redis in one Lua call and
publishes prediction records to `churn-predictions`, each naming its model version and
role.

Champion/challenger (only while the registry's `challenger` alias is set):

- split (`STREAMER_CHALLENGER_SHARE` of customers, by a stable hash of the customer id):
  the challenger serves those customers; one record per event, from the model that served.
- shadow: the champion serves every event; the challenger also scores every event and
  adds a second record with role `challenger`, but never writes profiles.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import orjson
from faust.types import EventT, StreamT

from models.aliases import CHALLENGER, CHAMPION, Role
from models.features import FEATURE_NAMES, feature_row
from models.registry import LoadedModel
from streamer.serving.models import ScoreCache, ServingModels, challenger_mask
from streamer.store.profiles import ScoreUpdate
from streamer.worker import metrics
from streamer.worker.activity import activity
from streamer.worker.agents.batching import micro_batches
from streamer.worker.app import app, settings
from streamer.worker.channels import enriched_events, predictions
from streamer.worker.deadletter import send_dead_letter
from streamer.worker.faust_patches.transactions import send_output
from streamer.worker.runtime import run_batches, runtime
from topics.events import utc_now_ms

STAGE: Final = "prediction"

# Per worker process: a customer's partition, and so its events, stay on one worker.
_cache = ScoreCache()


@dataclass(frozen=True, slots=True)
class Scored:
    """One model's scores for some rows of a batch."""

    model: LoadedModel
    role: Role
    rows: np.ndarray  # indices into the batch
    scores: list[float]
    cached: int = 0  # scores taken from the cache instead of the model


async def predict(stream: StreamT[bytes]) -> None:
    """Consume enriched events in micro-batches and score them."""
    await runtime.wait_started()
    await run_batches(stream, micro_batches(stream), predict_batch)


# With exactly_once, one agent counts and scores (streamer.worker.agents.exactly_once).
if settings.processing_guarantee == "at_least_once":
    app.agent(enriched_events, name="predict")(predict)


def _score_part(
    model: LoadedModel,
    role: Role,
    index: np.ndarray,
    rows: Sequence[Sequence[float]],
    customer_ids: Sequence[str],
    cache: ScoreCache | None,
) -> Scored:
    """Scores of the rows at ``index``: cached where valid, else one model call for the rest."""
    if cache is None:
        matrix = np.asarray([rows[i] for i in index.tolist()], dtype=np.float64)
        return Scored(model, role, index, model.score(matrix).tolist())
    keys = [tuple(rows[i]) for i in index.tolist()]
    ids = [customer_ids[i] for i in index.tolist()]
    found = [cache.get(role, cid, model.version, key) for cid, key in zip(ids, keys, strict=True)]
    misses = [position for position, score in enumerate(found) if score is None]
    computed: dict[int, float] = {}
    if misses:
        matrix = np.asarray([keys[p] for p in misses], dtype=np.float64)
        computed = dict(zip(misses, model.score(matrix).tolist(), strict=True))
    scores = [
        score if score is not None else computed[position] for position, score in enumerate(found)
    ]
    for cid, key, score in zip(ids, keys, scores, strict=True):
        cache.put(role, cid, model.version, key, score)
    return Scored(model, role, index, scores, cached=len(scores) - len(misses))


def score_batch(
    serving: ServingModels,
    rows: Sequence[Sequence[float]],
    customer_ids: Sequence[str],
    cache: ScoreCache | None = None,
) -> tuple[list[Scored], Scored | None]:
    """Split a batch's feature rows between the roles; (served scores, shadow scores or None).

    Each model is called at most once per batch (not at all if every score is cached).
    """
    champion, challenger = serving.champion, serving.challenger
    everything = np.arange(len(customer_ids))
    if challenger is None:
        return [_score_part(champion, CHAMPION, everything, rows, customer_ids, cache)], None
    if settings.challenger_mode == "shadow":
        served = _score_part(champion, CHAMPION, everything, rows, customer_ids, cache)
        shadow = _score_part(challenger, CHALLENGER, everything, rows, customer_ids, cache)
        return [served], shadow
    mask = challenger_mask(customer_ids, settings.challenger_share)
    sides: tuple[tuple[LoadedModel, Role, np.ndarray], ...] = (
        (champion, CHAMPION, np.flatnonzero(~mask)),
        (challenger, CHALLENGER, np.flatnonzero(mask)),
    )
    return [
        _score_part(model, role, index, rows, customer_ids, cache)
        for model, role, index in sides
        if len(index)
    ], None


async def predict_batch(batch: Sequence[EventT]) -> None:
    """Score one micro-batch: one `predict_proba` call per serving model."""
    serving = await runtime.models.wait_serving()
    started = time.perf_counter()
    rows: list[list[float]] = []
    scored: list[tuple[EventT, dict[str, object]]] = []
    customer_ids: list[str] = []
    event_ts: list[int] = []
    for event in batch:
        # Everything read per event is checked here, so one bad record cannot fail the batch.
        try:
            data = orjson.loads(event.value)
            inner = data["event"]
            row = feature_row(data["profile"])
            customer_id, ts = str(inner["customer_id"]), int(inner["ts"])
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
            await send_dead_letter(
                event, f"malformed enriched event: {exc!r}", type(exc).__name__, STAGE
            )
            continue
        rows.append(row)
        scored.append((event, inner))
        customer_ids.append(customer_id)
        event_ts.append(ts)
    if not rows:
        return
    served, shadow = score_batch(serving, rows, customer_ids, _cache)
    scored_at = utc_now_ms()
    newest: dict[str, ScoreUpdate] = {}
    records: list[tuple[int, bytes, bytes]] = []

    def record(index: int, part: Scored, score: float) -> None:
        event, inner = scored[index]
        customer_id = customer_ids[index]
        records.append(
            (
                index,
                event.message.key or customer_id.encode(),
                orjson.dumps(
                    {
                        "event_id": inner["event_id"],
                        "customer_id": customer_id,
                        "event_type": inner["type"],
                        "features": dict(zip(FEATURE_NAMES, rows[index], strict=True)),
                        "churn_score": score,
                        "model_version": part.model.version,
                        "model_role": part.role,
                        "event_ts": event_ts[index],
                        "scored_at": scored_at,
                    }
                ),
            )
        )
        metrics.CHURN_SCORE.labels(part.model.version).observe(score)
        metrics.PREDICTIONS_BY_ROLE.labels(part.role).inc()

    for part in served:
        for index, score in zip(part.rows.tolist(), part.scores, strict=True):
            customer_id, inner_type = customer_ids[index], str(scored[index][1]["type"])
            update = ScoreUpdate(customer_id, score, part.model.version, scored_at, event_ts[index])
            # A customer is always on one side, so this keeps its last event in batch order.
            newest[customer_id] = update
            record(index, part, score)
            activity.record(customer_id, inner_type, score, part.model.version, scored_at)
            metrics.END_TO_END_SECONDS.observe(max(0.0, (scored_at - event_ts[index]) / 1000))
    if shadow is not None:
        for index, score in zip(shadow.rows.tolist(), shadow.scores, strict=True):
            record(index, shadow, score)
    updates = list(newest.values())
    await runtime.call_store(lambda: runtime.profiles.write_scores(updates))
    # Batch order per event keeps a customer's records in event order (the sort is stable,
    # so the served record precedes its shadow twin).
    records.sort(key=lambda item: item[0])
    # Straight to Faust's producer, as enrichment does: `topic.send` costs a FutureMessage,
    # callbacks and sensor calls per record; Faust still flushes before committing offsets.
    # With exactly_once, each goes into the transaction of its event's partition instead.
    send, topic = app.producer.send, predictions.get_topic_name()
    if app.in_transaction:
        for index, key, value in records:
            await send_output(scored[index][0], topic, key, value)
    else:
        for _, key, value in records:
            await send(topic, key, value, None, None, None)
    metrics.EVENTS.labels(STAGE, "scored").inc(len(rows))
    cached = sum(part.cached for part in (*served, *([shadow] if shadow else [])))
    if cached:
        metrics.EVENTS.labels(STAGE, "score_cached").inc(cached)
    metrics.BATCH_SIZE.labels(STAGE).observe(len(batch))
    metrics.BATCH_SECONDS.labels(STAGE).observe(time.perf_counter() - started)
