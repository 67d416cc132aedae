"""A typed event producer on confluent-kafka: validates before sending, counts deliveries.

    with EventProducer("kafka://localhost:9092") as producer:
        producer.send({"event_id": "e1", "type": "complaint", "customer_id": "c-1",
                       "ts": "2026-11-22T10:00:00Z"})

Invalid events raise `InvalidEvent` at `send` and never reach the broker. `flush` (also
called on leaving the `with` block) waits for every delivery report.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
from confluent_kafka import KafkaError, Message, Producer
from pydantic import BaseModel

from topics.catalogue import CUSTOMER_EVENTS, bootstrap_servers
from topics.codec import validate_event


def keyed_producer(broker: str, config: Mapping[str, Any] | None = None) -> Producer:
    """A confluent-kafka producer that sends a key to the partition the Java client and
    Faust (aiokafka) would: murmur2 of the key. `broker` is a Faust broker URL or plain
    host:port list; `config` adds or overrides librdkafka settings."""
    return Producer(
        {
            "bootstrap.servers": bootstrap_servers(broker),
            "partitioner": "murmur2_random",
            **(config or {}),
        }
    )


@dataclass
class DeliveryStats:
    """Counts of delivery reports received so far."""

    delivered: int = 0
    failed: int = 0
    last_error: str | None = None
    errors: list[str] = field(default_factory=list)


class EventProducer:
    """Publishes validated customer events, keyed by customer id, to `customer-events`."""

    def __init__(
        self,
        broker: str,
        *,
        topic_prefix: str = "",
        config: Mapping[str, Any] | None = None,
    ) -> None:
        self._producer = keyed_producer(
            broker, {"enable.idempotence": True, "linger.ms": 5, **(config or {})}
        )
        self.topic = CUSTOMER_EVENTS.full_name(topic_prefix)
        self.stats = DeliveryStats()

    def send(self, event: Mapping[str, Any] | BaseModel) -> None:
        """Validate one event and queue it for delivery (raises `InvalidEvent`)."""
        data = event.model_dump(mode="json") if isinstance(event, BaseModel) else dict(event)
        validated = validate_event(data)
        self.send_raw(validated.customer_id.encode(), orjson.dumps(data))

    def send_raw(self, key: bytes | None, value: bytes) -> None:
        """Queue bytes without validation (for replays and tests of bad input)."""
        while True:
            try:
                self._producer.produce(self.topic, value=value, key=key, on_delivery=self._report)
                break
            except BufferError:
                # Local queue full: serve delivery reports to make room, then retry.
                self._producer.poll(0.05)
        self._producer.poll(0)

    def flush(self, timeout: float = 30.0) -> int:
        """Wait for outstanding deliveries; returns how many are still undelivered."""
        return int(self._producer.flush(timeout))

    def _report(self, error: KafkaError | None, _message: Message) -> None:
        if error is None:
            self.stats.delivered += 1
            return
        self.stats.failed += 1
        self.stats.last_error = str(error)
        if len(self.stats.errors) < 100:
            self.stats.errors.append(str(error))

    def __enter__(self) -> EventProducer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.flush()
