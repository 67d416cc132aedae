"""The Faust app class and the options every Faust app of this deployment shares; building
the worker's app from them is `streamer.worker.app`'s job."""

from __future__ import annotations

from typing import Any

import faust
from faust.types import TransportT

from streamer.connections import faust_broker_credentials
from streamer.settings import Settings
from streamer.worker.faust_patches.recovery import TableManager
from streamer.worker.faust_patches.transactions import Transport


class StreamerApp(faust.App):
    """Faust's app on Faust's aiokafka transport with the takeover and exactly-once fixes
    of `streamer.worker.faust_patches` (its table recovery fix comes in through the
    `TableManager` option of `faust_app_options`)."""

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
        "TableManager": TableManager,
        "topic_partitions": settings.topics.partitions,
        "topic_replication_factor": settings.topics.replication_factor,
        "datadir": str(settings.worker.data_dir),
        # Tansu (and a fresh Apache Kafka group) holds a join open for the whole rebalance
        # timeout; Faust's 60 s defaults would make every start and failover that slow.
        "broker_session_timeout": settings.worker.session_timeout,
        "broker_rebalance_timeout": settings.worker.rebalance_timeout,
        "broker_heartbeat_interval": min(3.0, settings.worker.session_timeout / 3),
    }
