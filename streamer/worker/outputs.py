"""Publishing a stage's records for a micro-batch to one of its topics."""

from __future__ import annotations

from collections.abc import Sequence

from faust.types import EventT, TopicT

from streamer.worker.app import app
from streamer.worker.faust_patches.transactions import send_output
from streamer.worker.stages import Output


async def publish(channel: TopicT, outputs: Sequence[Output[EventT]]) -> None:
    """Send records, in order, straight to Faust's producer: `topic.send` would add a
    FutureMessage, callbacks and sensor calls per record. Faust flushes the producer before
    it commits offsets, so a batch's offsets are still committed only after its records are
    delivered. With exactly_once each goes into the transaction of its event's partition,
    committed with that event's offset.

    A record takes the timestamp of the message it was made from (as Kafka Streams does), so
    a redelivered message enriched again lands in the same page-view window as its first
    copy (`streamer.worker.stages.counting`)."""
    topic = channel.get_topic_name()
    if app.in_transaction:
        for event, key, value in outputs:
            await send_output(event, topic, key, value, timestamp=event.message.timestamp)
        return
    send = app.producer.send
    for event, key, value in outputs:
        await send(topic, key, value, None, event.message.timestamp, None)
