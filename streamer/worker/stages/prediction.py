"""Scoring of one micro-batch of enriched events: one call per serving model per batch.

The feature row comes from `models.features.feature_row`, the function training uses.
Each batch writes the served score of each customer's newest profile state (the highest
`event_seq` in the batch) to the profile store in one call, and publishes one prediction
record per event and model, naming its version and role. The store keeps a score only if
no score of a newer profile state is stored, whatever the events' timestamps.

Champion/challenger (only while the registry's `challenger` alias is set):

- split (`STREAMER_CHALLENGER_SHARE` of customers, by a stable hash of the customer id):
  the challenger serves those customers; one record per event, from the model that served.
- shadow: the champion serves every event; the challenger also scores every event and
  adds a second record with role `challenger`, but never writes profiles.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from models.aliases import CHALLENGER, CHAMPION, Role
from models.features import FEATURE_NAMES, feature_row
from models.registry import LoadedModel
from streamer.serving.models import ScoreCache, ServingModels, challenger_mask
from streamer.store.profiles import ProfileStore, ScoreUpdate, profile_seq
from streamer.worker import metrics
from streamer.worker.activity import Activity
from streamer.worker.stages import DeadLetterSink, E, Output, Publish
from topics import wire
from topics.events import Stage, utc_now_ms


@dataclass(frozen=True, slots=True)
class ChallengerPolicy:
    """How a challenger, when there is one, shares the traffic (`STREAMER_CHALLENGER_*`)."""

    mode: Literal["split", "shadow"] = "split"
    share: float = 0.0


@dataclass(frozen=True, slots=True)
class Scored:
    """One model's scores for some rows of a batch."""

    model: LoadedModel
    role: Role
    rows: np.ndarray  # indices into the batch
    scores: list[float]
    cached: int = 0  # scores taken from the cache instead of the model


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
    policy: ChallengerPolicy,
    cache: ScoreCache | None = None,
) -> tuple[list[Scored], Scored | None]:
    """Split a batch's feature rows between the roles; (served scores, shadow scores or None).

    Each model is called at most once per batch (not at all if every score is cached).
    """
    champion, challenger = serving.champion, serving.challenger
    everything = np.arange(len(customer_ids))
    if challenger is None:
        return [_score_part(champion, CHAMPION, everything, rows, customer_ids, cache)], None
    if policy.mode == "shadow":
        served = _score_part(champion, CHAMPION, everything, rows, customer_ids, cache)
        shadow = _score_part(challenger, CHALLENGER, everything, rows, customer_ids, cache)
        return [served], shadow
    mask = challenger_mask(customer_ids, policy.share)
    sides: tuple[tuple[LoadedModel, Role, np.ndarray], ...] = (
        (champion, CHAMPION, np.flatnonzero(~mask)),
        (challenger, CHALLENGER, np.flatnonzero(mask)),
    )
    return [
        _score_part(model, role, index, rows, customer_ids, cache)
        for model, role, index in sides
        if len(index)
    ], None


async def predict(
    batch: Sequence[E],
    serving: ServingModels,
    *,
    policy: ChallengerPolicy,
    store: ProfileStore,
    publish: Publish[E],
    dead_letter: DeadLetterSink[E],
    cache: ScoreCache | None,
    activity: Activity,
    now: Callable[[], int] = utc_now_ms,
) -> None:
    """Score one micro-batch, store the newest served score per customer, publish records."""
    started = time.perf_counter()
    rows: list[list[float]] = []
    events: list[E] = []
    read: list[wire.Enriched] = []
    for event in batch:
        # Everything read per event is checked here, so one bad record cannot fail the batch.
        try:
            enriched = wire.parse_enriched(event.value)
        except wire.Malformed as bad:
            await dead_letter(event, bad.reason, bad.error_type, Stage.PREDICTION)
            continue
        rows.append(feature_row(enriched.profile))
        events.append(event)
        read.append(enriched)
    if not rows:
        return
    customer_ids = [enriched.customer_id for enriched in read]
    served, shadow = score_batch(serving, rows, customer_ids, policy, cache)
    scored_at = now()
    newest: dict[str, ScoreUpdate] = {}

    def record(index: int, part: Scored, score: float) -> bytes:
        enriched = read[index]
        metrics.CHURN_SCORE.labels(part.model.version).observe(score)
        metrics.PREDICTIONS_BY_ROLE.labels(part.role).inc()
        return wire.prediction_record(
            enriched.event_id,
            enriched.customer_id,
            enriched.type,
            dict(zip(FEATURE_NAMES, rows[index], strict=True)),
            score,
            part.model.version,
            part.role,
            enriched.ts,
            scored_at,
        )

    # Every event is served by exactly one model; in shadow mode the challenger scores all.
    served_records = [b""] * len(rows)
    for part in served:
        for index, score in zip(part.rows.tolist(), part.scores, strict=True):
            enriched = read[index]
            update = ScoreUpdate(
                enriched.customer_id,
                score,
                part.model.version,
                scored_at,
                enriched.ts,
                profile_seq(enriched.profile),
            )
            # A customer is always on one side; of its events, keep the newest profile state
            # (the last in batch order on a tie).
            kept = newest.get(enriched.customer_id)
            if kept is None or update.seq >= kept.seq:
                newest[enriched.customer_id] = update
            served_records[index] = record(index, part, score)
            activity.record(
                enriched.customer_id, enriched.type, score, part.model.version, scored_at
            )
            metrics.END_TO_END_SECONDS.observe(max(0.0, (scored_at - enriched.ts) / 1000))
    shadow_records: list[bytes] | None = None
    if shadow is not None:
        shadow_records = [b""] * len(rows)
        for index, score in zip(shadow.rows.tolist(), shadow.scores, strict=True):
            shadow_records[index] = record(index, shadow, score)
    await store.write_scores(list(newest.values()))
    # In batch order, so a customer's records stay in event order; a shadow record follows
    # the served record of its event.
    outputs: list[Output[E]] = []
    for index, event in enumerate(events):
        key = event.message.key or read[index].customer_id.encode()
        outputs.append((event, key, served_records[index]))
        if shadow_records is not None:
            outputs.append((event, key, shadow_records[index]))
    await publish(outputs)
    metrics.EVENTS.labels(Stage.PREDICTION, "scored").inc(len(rows))
    cached = sum(part.cached for part in (*served, *([shadow] if shadow else [])))
    if cached:
        metrics.EVENTS.labels(Stage.PREDICTION, "score_cached").inc(cached)
    metrics.BATCH_SIZE.labels(Stage.PREDICTION).observe(len(batch))
    metrics.BATCH_SECONDS.labels(Stage.PREDICTION).observe(time.perf_counter() - started)
