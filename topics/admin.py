"""Declare the service's topics on the broker: created where missing, never left to
auto-creation (which many production clusters, and the dev broker, turn off)."""

from __future__ import annotations

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from topics.catalogue import ALL_TOPICS, bootstrap_servers


class TopicsMissing(RuntimeError):
    """A topic the service needs does not exist and could not be created."""


def ensure_topics(
    broker: str,
    prefix: str,
    partitions: int,
    replication_factor: int = 1,
    config: dict[str, str] | None = None,
    timeout: float = 15.0,
) -> list[str]:
    """Create every catalogue topic that does not exist; returns the names created.

    Raises TopicsMissing naming the first topic that is neither there nor creatable (no
    permission to create topics, a policy refusing them, too few brokers for the replicas).
    """
    admin = AdminClient({"bootstrap.servers": bootstrap_servers(broker), **(config or {})})
    wanted = [spec.full_name(prefix) for spec in ALL_TOPICS]
    missing = [name for name in wanted if name not in _existing(admin, timeout)]
    if not missing:
        return []
    requests = [
        NewTopic(name, num_partitions=partitions, replication_factor=replication_factor)
        for name in missing
    ]
    created: list[str] = []
    refused: dict[str, str] = {}
    for name, future in admin.create_topics(requests, operation_timeout=timeout).items():
        try:
            future.result(timeout)
            created.append(name)
        except KafkaException as exc:
            error = exc.args[0]
            if error.code() != KafkaError.TOPIC_ALREADY_EXISTS:
                refused[name] = error.str()
    existing = _existing(admin, timeout) if refused else set()
    for name, reason in refused.items():
        if name not in existing:
            raise TopicsMissing(
                f"topic {name} does not exist and could not be created ({reason}); "
                "create it first (`streamer topics create` with the same settings)"
            )
    return created


def _existing(admin: AdminClient, timeout: float) -> set[str]:
    # All topics at once: a metadata request naming a topic may auto-create it.
    topics = admin.list_topics(timeout=timeout).topics
    return {name for name, topic in topics.items() if topic.error is None and topic.partitions}
