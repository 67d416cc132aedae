"""`streamer topics create`: create the service's topics (workers also create them)."""

from __future__ import annotations

import click
from confluent_kafka import KafkaException

from streamer.commands.common import load_settings
from streamer.connections import librdkafka_config
from topics.admin import TopicsMissing, ensure_topics


@click.group()
def topics() -> None:
    """Manage the service's topics."""


@topics.command("create")
def create() -> None:
    """Create customer-events, -enriched, churn-predictions and the DLQ if missing."""
    settings = load_settings()
    try:
        created = ensure_topics(
            settings.kafka.broker,
            settings.topics.prefix,
            settings.topics.partitions,
            settings.topics.replication_factor,
            config=librdkafka_config(settings.kafka),
        )
    except (KafkaException, TopicsMissing) as exc:
        raise click.ClickException(f"KAFKA_BROKER {settings.kafka.broker}: {exc}") from None
    click.echo(f"created {len(created)} topic(s): {', '.join(created) or 'none (all existed)'}")
