"""The event contract: topic catalogue, event models, JSON codec and a typed producer.

Producers outside this repository depend on this package alone.
"""

from topics.catalogue import ALL_TOPICS, CUSTOMER_EVENTS, DEAD_LETTERS, ENRICHED_EVENTS, PREDICTIONS
from topics.codec import InvalidEvent, decode_event, encode
from topics.events import (
    Complaint,
    CustomerEvent,
    DeadLetter,
    EnrichedEvent,
    EventType,
    Order,
    PageView,
    PredictionRecord,
    SupportCall,
)

__all__ = [
    "ALL_TOPICS",
    "CUSTOMER_EVENTS",
    "DEAD_LETTERS",
    "ENRICHED_EVENTS",
    "PREDICTIONS",
    "Complaint",
    "CustomerEvent",
    "DeadLetter",
    "EnrichedEvent",
    "EventType",
    "InvalidEvent",
    "Order",
    "PageView",
    "PredictionRecord",
    "SupportCall",
    "decode_event",
    "encode",
]
