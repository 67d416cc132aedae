"""The dev stack: a real broker (Apache Kafka or Tansu) and a real Redis on loopback, no Docker."""

from streamer.devstack.processes import StackError, free_port
from streamer.devstack.stack import (
    BROKER_CHOICES,
    BROKER_NAMES,
    BrokerChoice,
    EmbeddedStack,
    choose_broker,
)

__all__ = [
    "BROKER_CHOICES",
    "BROKER_NAMES",
    "BrokerChoice",
    "EmbeddedStack",
    "StackError",
    "choose_broker",
    "free_port",
]
