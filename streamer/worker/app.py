"""The Faust application: `faust -A streamer.app worker -l info`.

Importing this module reads settings from the environment and opens nothing: Redis, the
model and every connection are opened by `streamer.worker.runtime.Runtime` when the worker starts.
Agents, tables and web views live in their own modules, found by autodiscovery.
"""

from __future__ import annotations

import sys
from typing import Any

import faust
from faust.types import TransportT
from pydantic import ValidationError

from streamer.connections import faust_broker_credentials
from streamer.settings import Settings, get_settings, settings_error_line
from streamer.worker.faust_patches.transactions import Transport

try:
    settings = get_settings()
except ValidationError as exc:
    # A bad KAFKA_BROKER/REDIS_URL/... stops `faust -A streamer.app worker` with one line.
    sys.stderr.write(f"streamer: error: {settings_error_line(exc)}\n")
    raise SystemExit(2) from None


class StreamerApp(faust.App):
    """Faust's app on Faust's aiokafka transport with the takeover and exactly-once fixes
    of `streamer.worker.faust_patches`."""

    def _new_transport(self) -> TransportT:
        return Transport(self.conf.broker_consumer, self)

    def _new_producer_transport(self) -> TransportT:
        return Transport(self.conf.broker_producer, self)


def faust_app_options(settings: Settings) -> dict[str, Any]:
    """faust.App options every Faust app of this deployment shares (the worker's, and the
    benchmark's floor and textbook apps): broker and credentials, topic layout, local data,
    group timings."""
    return {
        "broker": settings.kafka.broker,
        "broker_credentials": faust_broker_credentials(settings.kafka),
        "store": "memory://",
        "topic_partitions": settings.topics.partitions,
        "topic_replication_factor": settings.topics.replication_factor,
        "datadir": str(settings.worker.data_dir),
        # Tansu (and a fresh Apache Kafka group) holds a join open for the whole rebalance
        # timeout; Faust's 60 s defaults would make every start and failover that slow.
        "broker_session_timeout": settings.worker.session_timeout,
        "broker_rebalance_timeout": settings.worker.rebalance_timeout,
        "broker_heartbeat_interval": min(3.0, settings.worker.session_timeout / 3),
    }


app = StreamerApp(
    settings.group_id,
    **faust_app_options(settings),
    autodiscover=["streamer.worker.agents", "streamer.worker.web"],
    origin="streamer",
    processing_guarantee=settings.worker.processing_guarantee,
    topic_allow_declare=True,
    key_serializer="raw",
    value_serializer="raw",
    producer_linger=0.005,
    # Faust's default waits at every rebalance until each in-flight message is acked, and
    # hangs for good when the rebalance dropped a queued copy of a message that two agents
    # read (faust-streaming#133). Not waiting is safe here: offsets still advance only past
    # acked events, and redelivered events are not counted twice (see streamer.store.profiles).
    stream_wait_empty=False,
    web_enabled=True,
)


def main() -> None:
    """Console entry point equivalent to `faust -A streamer.app`."""
    app.main()
