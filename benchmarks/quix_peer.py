"""The Quix Streams peer: the textbook's three stages written the way Quix Streams is used.

One message at a time through one StreamingDataFrame: drop a seen `event_id`, count the
event in the customer's Redis profile and read the profile back (one redis-py pipeline),
score it with the registered model, write the score to the profile and publish one
prediction record (`topics.wire`, as the pipeline writes them) to
`{TOPIC_PREFIX}churn-predictions`. A branch of the same chain counts page views per page
in tumbling windows, a `group_by` through Quix's repartition topic into Quix state
(RocksDB). Same Redis layout and fields as `benchmarks.textbook`.

Run as `python -m benchmarks.quix_peer`. Env: the service's settings (KAFKA_BROKER,
REDIS_URL, MODEL_REGISTRY, TOPIC_PREFIX, STREAMER_PARTITIONS), BENCH_INPUT_TOPIC (the
shared backlog topic to read) and BENCH_STATE_DIR (Quix's state folder, one per process).
Consumer group `{TOPIC_PREFIX}quix-peer`. Quix creates every topic it is missing through
its admin client, the dev broker's auto-creation being off: its repartition and
changelog topics (named after the group), and the input and predictions topics with the
service's partition count if they are not there yet.
"""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

import numpy as np
from quixstreams import Application
from quixstreams.kafka.configuration import ConnectionConfig
from quixstreams.models import Topic, TopicConfig
from redis import Redis

from models.features import FEATURE_NAMES, feature_row, is_cancel_page
from models.loading import pin_inference_threads
from models.registry import LoadedModel, ModelRegistry
from streamer.connections import librdkafka_config, redis_client_options
from streamer.settings import Settings, get_settings
from streamer.store.profiles import COUNTER_FIELD, DEDUP_PREFIX, LAST_EVENT_TS, PROFILE_PREFIX
from topics.catalogue import CUSTOMER_EVENTS, PREDICTIONS, bootstrap_servers
from topics.events import CHAMPION, EventType, utc_now_ms
from topics.wire import prediction_record

# How long an event_id is remembered, as in the textbook.
DEDUP_TTL_S = 3600
# Apache Kafka's default `retention.ms` (log.retention.ms, 7 days).
KAFKA_DEFAULT_RETENTION_MS = str(7 * 24 * 3600 * 1000)

Event = dict[str, Any]


class Stages:
    """The per-message callbacks of the chain, sharing one Redis client and the model."""

    def __init__(self, redis: Redis, model: LoadedModel) -> None:
        self._redis = redis
        self._model = model

    def first_seen(self, event: Event) -> bool:
        """Mark the event seen; False for an `event_id` seen before (dropped)."""
        mark = DEDUP_PREFIX + str(event["event_id"])
        return bool(self._redis.set(mark, "1", nx=True, ex=DEDUP_TTL_S))

    def enrich(self, event: Event) -> Event:
        """Count the event in its profile; the event joined with the profile after it."""
        key = PROFILE_PREFIX + str(event["customer_id"])
        page = event.get("page")
        # A transaction (redis-py's default pipeline): the profile read back is the one
        # these counts made, in one round trip.
        pipe = self._redis.pipeline()
        pipe.hincrby(key, COUNTER_FIELD[event["type"]], 1)
        if event["type"] == EventType.PAGE_VIEW and page and is_cancel_page(page):
            pipe.hincrby(key, "cancel_page_views", 1)
        pipe.hset(key, LAST_EVENT_TS, str(event["ts"]))
        pipe.hgetall(key)
        profile = pipe.execute()[-1]
        return {"event": event, "profile": profile}

    def score(self, enriched: Event) -> bytes:
        """Score the profile, store the score on it; the prediction record to publish."""
        event = enriched["event"]
        row = feature_row(enriched["profile"])
        churn_score = float(self._model.score(np.asarray([row], dtype=np.float64))[0])
        scored_at = utc_now_ms()
        self._redis.hset(
            PROFILE_PREFIX + str(event["customer_id"]),
            mapping={
                "churn_score": repr(churn_score),
                "model_version": self._model.version,
                "scored_at": str(scored_at),
            },
        )
        return prediction_record(
            event_id=str(event["event_id"]),
            customer_id=str(event["customer_id"]),
            event_type=str(event["type"]),
            features=dict(zip(FEATURE_NAMES, row, strict=True)),
            churn_score=churn_score,
            model_version=self._model.version,
            model_role=CHAMPION,
            event_ts=int(event["ts"]),
            scored_at=scored_at,
        )


def is_page_view(enriched: Event) -> bool:
    event = enriched["event"]
    return bool(event["type"] == EventType.PAGE_VIEW and event.get("page"))


def application(settings: Settings) -> Application:
    """Quix's defaults but for the settings below.

    - `auto_offset_reset="earliest"`: the backlog is on the input topic before the peer
      joins (Quix's default, "latest", would skip all of it).
    - `consumer_group`: one per topic prefix, like the other contenders' app ids.
    - `state_dir`: BENCH_STATE_DIR, so each run keeps its RocksDB state in its own
      work folder (Quix's default is `./state` under the working directory).
    - The broker address and security settings come from the service's settings.
    """
    connection = ConnectionConfig.from_librdkafka_dict(
        {
            "bootstrap.servers": bootstrap_servers(settings.kafka.broker),
            **librdkafka_config(settings.kafka),
        }
    )
    return Application(
        broker_address=connection,
        consumer_group=f"{settings.topics.prefix}quix-peer",
        auto_offset_reset="earliest",
        state_dir=os.environ.get("BENCH_STATE_DIR", "state"),
    )


def build(app: Application, stages: Stages, settings: Settings) -> None:
    """The chain: dedup, enrich, then two branches: score and publish; count page views."""
    prefix = settings.topics.prefix
    # Used only if Quix has to create the topic: the service's shape, not Quix's 1 partition.
    shape = TopicConfig(
        num_partitions=settings.topics.partitions,
        replication_factor=settings.topics.replication_factor,
    )
    events = with_retention(
        app.topic(
            os.environ.get("BENCH_INPUT_TOPIC", CUSTOMER_EVENTS.full_name(prefix)),
            key_deserializer="str",
            value_deserializer="json",
            config=shape,
        )
    )
    predictions = app.topic(
        PREDICTIONS.full_name(prefix),
        key_serializer="str",
        value_serializer="bytes",
        config=shape,
    )

    enriched = app.dataframe(events).filter(stages.first_seen).apply(stages.enrich)
    enriched.apply(stages.score).to_topic(predictions)
    (
        enriched.filter(is_page_view)
        .apply(lambda value: value["event"]["page"])
        .group_by(lambda page: page, name="page")
        .tumbling_window(timedelta(seconds=settings.worker.page_window))
        .count()
        .final()
    )


def with_retention(topic: Topic) -> Topic:
    """The topic, its `retention.ms` set to Apache Kafka's default where the broker named
    none: Quix copies the input's retention (which it requires) to its repartition and
    changelog topics, and Tansu reports only the configs a topic was created with."""
    topic.broker_config.extra_config.setdefault("retention.ms", KAFKA_DEFAULT_RETENTION_MS)
    return topic


def serving_model(settings: Settings) -> LoadedModel:
    registry = ModelRegistry(settings.models.registry)
    version = registry.serving_version()
    if version is None:
        raise SystemExit(f"no model in the registry {settings.models.registry}")
    return registry.load(version)


def main() -> None:
    settings = get_settings()
    model = serving_model(settings)
    pin_inference_threads()  # pinned like the pipeline (see there why)
    redis = Redis.from_url(
        settings.redis.url, decode_responses=True, **redis_client_options(settings.redis)
    )
    app = application(settings)
    build(app, Stages(redis, model), settings)
    app.run()


if __name__ == "__main__":
    main()
