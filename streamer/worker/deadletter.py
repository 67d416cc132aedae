"""Publishing unprocessable messages to the dead-letter topic, original bytes intact."""

from __future__ import annotations

import base64
import logging
from typing import Literal

import orjson
from faust.types import EventT

from streamer.worker import metrics
from streamer.worker.channels import dead_letters
from streamer.worker.faust_patches.transactions import send_output
from topics.events import utc_now_ms

log = logging.getLogger(__name__)

Stage = Literal["validation", "enrichment", "counting", "prediction"]


def dead_letter_record(
    event: EventT, reason: str, error_type: str, stage: Stage
) -> dict[str, object]:
    """The DLQ value (see `topics.events.DeadLetter`) for a message read by an agent."""
    message = event.message
    raw = event.value if isinstance(event.value, bytes | bytearray) else b""
    return {
        "reason": reason,
        "error_type": error_type,
        "stage": stage,
        "source": {
            "topic": message.topic,
            "partition": message.partition,
            "offset": message.offset,
        },
        "failed_at": utc_now_ms(),
        "key": _text(message.key),
        "payload": _text(raw),
        "payload_b64": base64.b64encode(raw).decode("ascii"),
    }


async def send_dead_letter(event: EventT, reason: str, error_type: str, stage: Stage) -> None:
    """Publish one dead letter (value and headers carry the reason) and count it."""
    record = dead_letter_record(event, reason, error_type, stage)
    source = record["source"]
    assert isinstance(source, dict)
    headers = [
        ("dlq.reason", reason.encode()[:1024]),
        ("dlq.error_type", error_type.encode()),
        ("dlq.stage", stage.encode()),
        ("dlq.source", f"{source['topic']}/{source['partition']}/{source['offset']}".encode()),
        ("dlq.failed_at", str(record["failed_at"]).encode()),
    ]
    key, value = event.message.key, orjson.dumps(record)
    if event.app.in_transaction:
        # In the transaction of the event's partition, committed with its offset.
        await send_output(event, dead_letters.get_topic_name(), key, value, headers)
    else:
        await dead_letters.send(key=key, value=value, headers=headers)
    metrics.DEAD_LETTERS.labels(stage).inc()
    metrics.EVENTS.labels(stage, "dead_letter").inc()
    log.info(
        "Dead-lettered %s/%s/%s at %s: %s",
        source["topic"],
        source["partition"],
        source["offset"],
        stage,
        reason,
    )


def _text(raw: bytes | bytearray | memoryview | str | None) -> str | None:
    if raw is None:
        return None
    if isinstance(raw, str):
        return raw
    try:
        return bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        return None
