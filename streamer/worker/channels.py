"""Faust topic objects for the catalogue in `topics/`; agents import these, never declare.

Values stay raw bytes through Faust: the service validates and encodes them itself with
pydantic and orjson, so a malformed value reaches our code (and the dead-letter topic)
instead of crashing Faust's deserialiser, and no per-message Record is built.
"""

from __future__ import annotations

from faust.types import TopicT

from streamer.worker.app import app, settings
from topics.catalogue import CUSTOMER_EVENTS, DEAD_LETTERS, ENRICHED_EVENTS, PREDICTIONS, TopicSpec


def _topic(spec: TopicSpec) -> TopicT:
    # internal=True lets the worker create the topic with the configured partitions:
    # brokers without auto-creation (Tansu, locked-down clusters) need that.
    return app.topic(
        spec.full_name(settings.topics.prefix),
        key_serializer="raw",
        value_serializer="raw",
        partitions=settings.topics.partitions,
        internal=True,
    )


customer_events = _topic(CUSTOMER_EVENTS)
enriched_events = _topic(ENRICHED_EVENTS)
predictions = _topic(PREDICTIONS)
dead_letters = _topic(DEAD_LETTERS)
