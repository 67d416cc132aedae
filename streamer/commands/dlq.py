"""`streamer dlq list|replay`: inspect dead letters and re-publish them after a fix.

The dead-letter topic is read by assigning its partitions directly (no consumer-group
join, nothing committed) and until it stays quiet for `--idle` seconds rather than up to
the high watermark, which some brokers under-report (see the field notes on Tansu).
"""

from __future__ import annotations

import base64
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import click
import orjson
from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    TopicPartition,
)
from confluent_kafka import Message as KafkaMessage

from streamer.commands.common import load_settings
from streamer.connections import librdkafka_config
from streamer.settings import Settings
from topics.catalogue import DEAD_LETTERS, bootstrap_servers
from topics.events import Stage
from topics.producer import keyed_producer
from topics.wire import parse_dead_letter

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}
REASON_WIDTH = 90


class SinceParam(click.ParamType):
    """A point in time: `15m`/`2h`/`7d` ago, an RFC 3339 time, or epoch milliseconds."""

    name = "since"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        text = str(value).strip()
        duration = _DURATION.match(text)
        if duration:
            seconds = float(duration.group(1)) * _UNIT_S[duration.group(2)]
            return int((time.time() - seconds) * 1000)
        if text.isdigit():
            return int(text)
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            self.fail(
                f"{text[:40]!r} is not a duration (30s, 15m, 2h, 7d), an RFC 3339 time "
                "or epoch milliseconds",
                param,
                ctx,
            )
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return int(parsed.timestamp() * 1000)


@dataclass(frozen=True)
class DeadLetterEntry:
    """One record of the dead-letter topic, as read back."""

    partition: int
    offset: int
    key: bytes | None
    record: dict[str, Any]

    @property
    def failed_at(self) -> int:
        value = self.record.get("failed_at")
        return value if isinstance(value, int) else 0

    @property
    def stage(self) -> str:
        return str(self.record.get("stage", "?"))

    @property
    def reason(self) -> str:
        return str(self.record.get("reason", "?"))

    @property
    def source(self) -> dict[str, Any]:
        source = self.record.get("source")
        return source if isinstance(source, dict) else {}

    @property
    def source_text(self) -> str:
        source = self.source
        if not source:
            return "?"
        return f"{source.get('topic')}/{source.get('partition')}/{source.get('offset')}"

    def original_value(self) -> bytes | None:
        encoded = self.record.get("payload_b64")
        if not isinstance(encoded, str):
            return None
        try:
            return base64.b64decode(encoded, validate=True)
        except ValueError:
            return None

    def summary(self) -> dict[str, Any]:
        return {
            "failed_at": iso(self.failed_at),
            "stage": self.stage,
            "reason": self.reason,
            "error_type": self.record.get("error_type"),
            "source": self.source,
            "key": self.record.get("key"),
            "dlq": {"partition": self.partition, "offset": self.offset},
        }


def iso(epoch_ms: int) -> str:
    stamp = datetime.fromtimestamp(epoch_ms / 1000, UTC)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}Z"


def _parse(message: KafkaMessage) -> DeadLetterEntry:
    raw = message.value() or b""
    try:
        record = parse_dead_letter(raw)
    except ValueError:
        record = {"reason": f"unreadable dead letter ({len(raw)} bytes)", "stage": "?"}
    if "failed_at" not in record:
        _, stamp = message.timestamp()
        record["failed_at"] = stamp
    return DeadLetterEntry(message.partition() or 0, message.offset() or 0, message.key(), record)


def read_dead_letters(settings: Settings, idle_s: float, timeout_s: float) -> list[DeadLetterEntry]:
    """Every record of the dead-letter topic, read from the start of each partition."""
    topic = DEAD_LETTERS.full_name(settings.topics.prefix)
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap_servers(settings.kafka.broker),
            "group.id": f"streamer-dlq-reader-{time.time_ns()}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "socket.timeout.ms": 10000,
            # Errors reach the user as one line; librdkafka's own log would repeat them.
            "log_level": 0,
            **librdkafka_config(settings.kafka),
        }
    )
    entries: list[DeadLetterEntry] = []
    try:
        metadata = consumer.list_topics(topic, timeout=5).topics.get(topic)
        if metadata is None or metadata.error is not None or not metadata.partitions:
            return []
        consumer.assign(
            [
                TopicPartition(topic, partition, OFFSET_BEGINNING)
                for partition in metadata.partitions
            ]
        )
        deadline = time.monotonic() + timeout_s
        quiet_since = time.monotonic()
        while time.monotonic() < deadline and time.monotonic() - quiet_since < idle_s:
            batch = consumer.consume(500, timeout=0.2)
            for message in batch:
                error = message.error()
                if error is None:
                    entries.append(_parse(message))
                elif error.code() != KafkaError._PARTITION_EOF:
                    raise KafkaException(error)
            if batch:
                quiet_since = time.monotonic()
    finally:
        consumer.close()
    entries.sort(key=lambda entry: (entry.failed_at, entry.partition, entry.offset))
    return entries


def select(
    entries: list[DeadLetterEntry], since: int | None, stage: str | None
) -> Iterator[DeadLetterEntry]:
    for entry in entries:
        if since is not None and entry.failed_at < since:
            continue
        if stage is not None and entry.stage != stage:
            continue
        yield entry


def _read(settings: Settings, idle: float, timeout: float) -> list[DeadLetterEntry]:
    try:
        return read_dead_letters(settings, idle, timeout)
    except KafkaException as exc:
        raise click.ClickException(
            f"KAFKA_BROKER {settings.kafka.broker}: {exc.args[0].str() if exc.args else exc}"
        ) from None


_since_option = click.option(
    "--since",
    type=SinceParam(),
    default=None,
    help="only dead letters from this time on: 30s, 15m, 2h, 7d, an RFC 3339 time or epoch ms",
)
_stage_option = click.option(
    "--stage",
    type=click.Choice([stage.value for stage in Stage]),
    default=None,
    help="only dead letters of this stage",
)
_idle_option = click.option(
    "--idle",
    type=click.FloatRange(min=0.2),
    default=2.0,
    help="stop reading after this many seconds without a new record",
)
_timeout_option = click.option(
    "--timeout",
    type=click.FloatRange(min=1),
    default=120.0,
    help="stop reading after this many seconds in all",
)


@click.group("dlq")
def dlq() -> None:
    """Inspect and replay the dead-letter topic (customer-events-dlq)."""


@dlq.command("list")
@_since_option
@_stage_option
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=50,
    help="show at most this many, the newest",
)
@click.option("--json", "as_json", is_flag=True, help="one JSON object per line")
@_idle_option
@_timeout_option
def list_dead_letters(
    since: int | None,
    stage: str | None,
    limit: int,
    as_json: bool,
    idle: float,
    timeout: float,
) -> None:
    """List dead letters, oldest first: time, stage, source position and reason."""
    settings = load_settings()
    chosen = list(select(_read(settings, idle, timeout), since, stage))
    shown = chosen[-limit:]
    if as_json:
        for entry in shown:
            click.echo(orjson.dumps(entry.summary()).decode())
        return
    if not shown:
        click.echo("no dead letters")
        return
    rows = [
        (iso(entry.failed_at), entry.stage, entry.source_text, _one_line(entry.reason))
        for entry in shown
    ]
    header = ("FAILED_AT", "STAGE", "SOURCE", "REASON")
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(3)]
    for row in (header, *rows):
        cells = [cell.ljust(width) for cell, width in zip(row[:3], widths, strict=True)]
        click.echo("  ".join([*cells, row[3]]).rstrip())
    if len(chosen) > len(shown):
        click.echo(f"({len(chosen) - len(shown)} older not shown; raise --limit)")


def _one_line(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= REASON_WIDTH else flat[: REASON_WIDTH - 3] + "..."


@dlq.command("replay")
@_since_option
@_stage_option
@click.option("--dry-run", is_flag=True, help="count what would be replayed, send nothing")
@_idle_option
@_timeout_option
def replay(
    since: int | None, stage: str | None, dry_run: bool, idle: float, timeout: float
) -> None:
    """Re-publish dead letters' original key and bytes to their source topics."""
    settings = load_settings()
    chosen = list(select(_read(settings, idle, timeout), since, stage))
    sendable: list[tuple[DeadLetterEntry, str, bytes]] = []
    skipped = 0
    for entry in chosen:
        topic = entry.source.get("topic")
        value = entry.original_value()
        if not isinstance(topic, str) or not topic or value is None:
            skipped += 1
            continue
        sendable.append((entry, topic, value))
    per_topic: dict[str, int] = {}
    for _, topic, _ in sendable:
        per_topic[topic] = per_topic.get(topic, 0) + 1
    where = ", ".join(f"{topic} ({count})" for topic, count in sorted(per_topic.items()))
    if dry_run:
        click.echo(f"would replay {len(sendable)} dead letter(s){': ' + where if where else ''}")
        return
    failed = _publish(settings, sendable) if sendable else []
    if failed:
        raise click.ClickException(
            f"{len(failed)} of {len(sendable)} replays not delivered "
            f"(KAFKA_BROKER {settings.kafka.broker}): {failed[0]}"
        )
    note = f"; {skipped} without source or payload skipped" if skipped else ""
    click.echo(f"replayed {len(sendable)} dead letter(s){': ' + where if where else ''}{note}")


def _publish(settings: Settings, items: list[tuple[DeadLetterEntry, str, bytes]]) -> list[str]:
    producer = keyed_producer(
        settings.kafka.broker,
        {
            "enable.idempotence": True,
            "linger.ms": 5,
            "log_level": 0,
            **librdkafka_config(settings.kafka),
        },
    )
    failures: list[str] = []

    def report(error: KafkaError | None, _message: KafkaMessage) -> None:
        if error is not None:
            failures.append(str(error))

    for entry, topic, value in items:
        headers: list[tuple[str, str | bytes | None]] = [
            ("dlq.replayed_from", f"{entry.partition}/{entry.offset}".encode())
        ]
        while True:
            try:
                producer.produce(
                    topic, value=value, key=entry.key, headers=headers, on_delivery=report
                )
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    undelivered = producer.flush(30)
    if undelivered:
        failures.append(f"{undelivered} still queued after 30 s")
    return failures
