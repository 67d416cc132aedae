"""The textbook baseline: the pipeline's three agents written the obvious way.

Per event: `faust.Record` values, one Redis round trip per command, one `predict_proba`
call, one table update and one `topic.send`. Same contract-shaped outputs as the real
pipeline (profile counters, scores, one prediction record per scored event), under its
own app id and topic prefix, so the benchmark can read its predictions the same way.

Run as `faust -A benchmarks.textbook worker`. Env: the service's settings plus
BENCH_INPUT_TOPIC (the shared backlog topic to read). Its topics must exist before it
starts on a broker without auto-creation (Apache Kafka's dev broker): the harness creates
the catalogue topics of its prefix, among them the predictions topic, which it only writes
(Faust declares internal topics it consumes, not ones it only sends to); Faust declares
the table's changelog and the leader topic itself.
"""

from __future__ import annotations

import os
from typing import Any

import faust
import numpy as np
import redis.asyncio as aioredis
from faust.types import StreamT

from models.features import FEATURE_NAMES, feature_row, is_cancel_page
from models.loading import pin_inference_threads
from models.registry import LoadedModel, ModelRegistry
from streamer.settings import get_settings
from streamer.worker.faust_app import faust_app_options
from topics.events import utc_now_ms

settings = get_settings()
PREFIX = settings.topics.prefix

app = faust.App(f"{PREFIX}textbook", **faust_app_options(settings))


class RawEvent(faust.Record, serializer="json"):
    event_id: str
    type: str
    customer_id: str
    ts: int
    page: str | None = None
    amount: float | None = None


class Enriched(RawEvent, serializer="json"):
    """The raw event and the customer's profile after it was counted."""

    # Defaults only because the inherited fields have some: both are always given.
    profile: dict[str, str] = {}
    enriched_at: int = 0


class Prediction(faust.Record, serializer="json"):
    event_id: str
    customer_id: str
    event_type: str
    features: dict[str, float]
    churn_score: float
    model_version: str
    event_ts: int
    scored_at: int


raw_events = app.topic(os.environ.get("BENCH_INPUT_TOPIC", "customer-events"), value_type=RawEvent)
enriched_events = app.topic(
    f"{PREFIX}customer-events-enriched",
    value_type=Enriched,
    partitions=settings.topics.partitions,
    internal=True,
)
predictions = app.topic(
    f"{PREFIX}churn-predictions",
    value_type=Prediction,
    partitions=settings.topics.partitions,
    internal=True,
)
page_views = app.Table("page-views", default=int, partitions=settings.topics.partitions)

COUNTERS = {
    "page_view": "page_views",
    "complaint": "complaints",
    "support_call": "support_calls",
    "order": "orders",
}

_state: dict[str, Any] = {}


def redis_client() -> aioredis.Redis:
    if "redis" not in _state:
        _state["redis"] = aioredis.Redis.from_url(settings.redis.url, decode_responses=True)
    client: aioredis.Redis = _state["redis"]
    return client


def model() -> LoadedModel:
    if "model" not in _state:
        registry = ModelRegistry(settings.models.registry)
        version = registry.serving_version()
        assert version is not None, "no serving model in the registry"
        _state["model"] = registry.load(version)
        # Pinned like the pipeline, so the comparison is about the design, not threads.
        pin_inference_threads()
    loaded: LoadedModel = _state["model"]
    return loaded


@app.agent(raw_events, name="textbook-enrich")
async def enrich(stream: StreamT[RawEvent]) -> None:
    redis = redis_client()
    async for event in stream:
        if not await redis.set(f"dedup:{event.event_id}", "1", nx=True, ex=3600):
            continue
        key = f"profile:{event.customer_id}"
        await redis.hincrby(key, COUNTERS[event.type], 1)
        if event.type == "page_view" and event.page and is_cancel_page(event.page):
            await redis.hincrby(key, "cancel_page_views", 1)
        await redis.hset(key, "last_event_ts", str(event.ts))
        profile = await redis.hgetall(key)
        enriched = Enriched(**event.asdict(), profile=profile, enriched_at=utc_now_ms())
        await enriched_events.send(key=event.customer_id, value=enriched)


@app.agent(enriched_events, name="textbook-count")
async def count(stream: StreamT[Enriched]) -> None:
    async for enriched in stream:
        if enriched.type == "page_view" and enriched.page:
            page_views[enriched.page] += 1


@app.agent(enriched_events, name="textbook-predict")
async def predict(stream: StreamT[Enriched]) -> None:
    redis = redis_client()
    async for enriched in stream:
        serving = model()
        row = feature_row(enriched.profile)
        score = float(serving.score(np.asarray([row], dtype=np.float64))[0])
        scored_at = utc_now_ms()
        await redis.hset(
            f"profile:{enriched.customer_id}",
            mapping={
                "churn_score": repr(score),
                "model_version": serving.version,
                "scored_at": str(scored_at),
            },
        )
        await predictions.send(
            key=enriched.customer_id,
            value=Prediction(
                event_id=enriched.event_id,
                customer_id=enriched.customer_id,
                event_type=enriched.type,
                features=dict(zip(FEATURE_NAMES, row, strict=True)),
                churn_score=score,
                model_version=serving.version,
                event_ts=enriched.ts,
                scored_at=scored_at,
            ),
        )
