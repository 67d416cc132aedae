"""Publishing unprocessable messages to the dead-letter topic, original bytes intact."""

from __future__ import annotations

import logging

from faust.types import EventT

from streamer.worker import metrics
from streamer.worker.channels import dead_letters
from streamer.worker.faust_patches.transactions import send_output
from streamer.worker.stages import position
from topics import wire
from topics.events import Stage, utc_now_ms

log = logging.getLogger(__name__)


async def send_dead_letter(event: EventT, reason: str, error_type: str, stage: Stage) -> None:
    """Publish one dead letter (value and headers carry the reason) and count it."""
    message = event.message
    source = position(event)
    failed_at = utc_now_ms()
    value = wire.dead_letter(
        reason=reason,
        error_type=error_type,
        stage=stage,
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        failed_at=failed_at,
        key=message.key,
        payload=event.value if isinstance(event.value, bytes | bytearray) else b"",
    )
    headers = [
        ("dlq.reason", reason.encode()[:1024]),
        ("dlq.error_type", error_type.encode()),
        ("dlq.stage", stage.encode()),
        ("dlq.source", source.encode()),
        ("dlq.failed_at", str(failed_at).encode()),
    ]
    if event.app.in_transaction:
        # In the transaction of the event's partition, committed with its offset.
        await send_output(event, dead_letters.get_topic_name(), message.key, value, headers)
    else:
        await dead_letters.send(key=message.key, value=value, headers=headers)
    metrics.DEAD_LETTERS.labels(stage).inc()
    metrics.EVENTS.labels(stage, "dead_letter").inc()
    log.info("Dead-lettered %s at %s: %s", source, stage, reason)
