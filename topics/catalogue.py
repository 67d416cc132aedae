"""Topic catalogue: every topic the system reads or writes, as data.

All topics are keyed by `customer_id` (UTF-8 bytes) and share one partition count, so a
customer's events, enriched events and predictions land on the same partition number and
Faust tables stay co-partitioned with their source streams.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_PARTITIONS = 4


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """A topic's unprefixed name and what it carries."""

    name: str
    description: str

    def full_name(self, prefix: str = "") -> str:
        """The topic name on the broker, with the deployment's `TOPIC_PREFIX`."""
        return f"{prefix}{self.name}"


CUSTOMER_EVENTS = TopicSpec("customer-events", "raw customer events from producers")
ENRICHED_EVENTS = TopicSpec(
    "customer-events-enriched", "first-seen events joined with the customer's profile"
)
PREDICTIONS = TopicSpec("churn-predictions", "one record per scored event")
DEAD_LETTERS = TopicSpec(
    "customer-events-dlq", "events that could not be processed, with reason and source"
)

ALL_TOPICS: tuple[TopicSpec, ...] = (CUSTOMER_EVENTS, ENRICHED_EVENTS, PREDICTIONS, DEAD_LETTERS)


def bootstrap_servers(broker_url: str) -> str:
    """Turn Faust broker URLs (`kafka://h1:9092;kafka://h2:9092`) into `h1:9092,h2:9092`."""
    hosts = []
    for part in broker_url.replace(",", ";").split(";"):
        part = part.strip()
        if not part:
            continue
        _, sep, rest = part.partition("://")
        hosts.append((rest if sep else part).rstrip("/"))
    if not hosts:
        raise ValueError(f"no broker address in {broker_url!r}")
    return ",".join(hosts)
