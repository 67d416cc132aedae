"""`streamer topics create`: create the service's topics (workers also create them)."""

from __future__ import annotations

import click
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from streamer.commands.common import load_settings
from topics.catalogue import ALL_TOPICS, bootstrap_servers


def create_topics(
    broker: str,
    prefix: str,
    partitions: int,
    timeout: float = 15.0,
    config: dict[str, str] | None = None,
) -> list[str]:
    """Create every catalogue topic that does not exist; returns the names created."""
    admin = AdminClient({"bootstrap.servers": bootstrap_servers(broker), **(config or {})})
    wanted = [
        NewTopic(spec.full_name(prefix), num_partitions=partitions, replication_factor=1)
        for spec in ALL_TOPICS
    ]
    created = []
    for name, future in admin.create_topics(wanted, operation_timeout=timeout).items():
        try:
            future.result(timeout)
            created.append(name)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
    return created


@click.group()
def topics() -> None:
    """Manage the service's topics."""


@topics.command("create")
def create() -> None:
    """Create customer-events, -enriched, churn-predictions and the DLQ if missing."""
    settings = load_settings()
    try:
        created = create_topics(
            settings.kafka_broker,
            settings.topic_prefix,
            settings.topic_partitions,
            config=settings.kafka_client_config(),
        )
    except KafkaException as exc:
        raise click.ClickException(f"KAFKA_BROKER {settings.kafka_broker}: {exc}") from None
    click.echo(f"created {len(created)} topic(s): {', '.join(created) or 'none (all existed)'}")
