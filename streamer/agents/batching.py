"""Micro-batches of events, the unit every agent works in."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any, cast

from faust import Stream
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import EventT, StreamT

from streamer.app import settings


def micro_batches(stream: StreamT[bytes]) -> AsyncIterator[Sequence[EventT]]:
    """Up to STREAMER_BATCH_SIZE events, or fewer after STREAMER_BATCH_WITHIN seconds.

    Events (not bare values) keep the partition and offset the dead-letter records and the
    table changelogs need; they are acknowledged after the batch is processed.
    """
    return cast(Stream[bytes], stream).take_events(
        settings.batch_size, within=settings.batch_within_s
    )


def bound_fetch_wait() -> None:
    """Cap how long the worker's fetches wait at the broker to STREAMER_FETCH_MAX_WAIT.

    Faust hard-codes 1.5 s. Apache Kafka answers a fetch as soon as data arrives, so there
    that is only the idle poll interval; brokers that hold the fetch for the full wait
    (Tansu does) add it to the latency of every stage. Faust offers no setting for it.
    """
    thread = faust_aiokafka.AIOKafkaConsumerThread
    create = thread._create_worker_consumer
    if getattr(create, "bounded", False):
        return

    def create_bounded(self: Any, transport: Any) -> Any:
        consumer = create(self, transport)
        consumer._fetch_max_wait_ms = int(settings.fetch_max_wait_s * 1000)
        return consumer

    create_bounded.bounded = True  # type: ignore[attr-defined]
    thread._create_worker_consumer = create_bounded  # type: ignore[method-assign]


bound_fetch_wait()
