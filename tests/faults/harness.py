"""Figures of a fault scenario: what was sent, what the pipeline counted, what it lost.

Everything is measured from the real outputs: profile counters in Redis, the page-view
tables over HTTP, the `churn-predictions` and dead-letter topics.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson
import redis
from confluent_kafka import Consumer, Message, TopicPartition

from streamer.devstack import EmbeddedStack
from tests.support import eventually, http, produce_raw, read_topic

TS = 1795341600000  # 2026-11-22T10:00:00Z
PAGES = ("/pricing", "/docs", "/cancel", "/home", "/plans")
KINDS = ("page_view", "page_view", "page_view", "complaint", "support_call", "order")
COUNTER_FIELD = {
    "page_view": "page_views",
    "complaint": "complaints",
    "support_call": "support_calls",
    "order": "orders",
}
COUNTERS = tuple(COUNTER_FIELD.values())


def on_tansu(stack: EmbeddedStack) -> bool:
    """Whether the session runs on the embedded Tansu broker (see its deviations)."""
    return stack.broker_kind == "tansu"


def make_events(
    count: int, run: str, customers: int = 50, seed: int = 1
) -> list[dict[str, object]]:
    """`count` valid events with unique ids over `customers` customers."""
    rng = random.Random(seed)
    events: list[dict[str, object]] = []
    for i in range(count):
        kind = rng.choice(KINDS)
        event: dict[str, object] = {
            "event_id": f"{run}-{i}",
            "type": kind,
            "customer_id": f"{run}-c{rng.randrange(customers)}",
            "ts": TS + i,
        }
        if kind == "page_view":
            event["page"] = rng.choice(PAGES)
        if kind == "order":
            event["amount"] = round(rng.uniform(1, 200), 2)
        events.append(event)
    return events


def encode(event: dict[str, object]) -> tuple[bytes, bytes]:
    return str(event["customer_id"]).encode(), orjson.dumps(event)


@dataclass
class Figures:
    """One scenario's figures; `line()` is what the suite prints."""

    scenario: str
    sent: int
    valid: int
    profiles: int = 0
    tables: int = 0
    table_expected: int = 0
    predictions: int = 0
    predicted_events: int = 0
    dead_letters: int = 0
    lost: int = 0
    double: int = 0
    notes: list[str] = field(default_factory=list)

    def line(self) -> str:
        text = (
            f"FAULTS {self.scenario}: sent={self.sent} valid={self.valid} "
            f"profiles={self.profiles} tables={self.tables}/{self.table_expected} "
            f"predictions={self.predictions} (events covered {self.predicted_events}) "
            f"dead_letters={self.dead_letters} lost={self.lost} double_counted={self.double}"
        )
        return text + "".join(f" | {note}" for note in self.notes)


class Measure:
    """Reads the pipeline's outputs for one topic prefix and Redis database."""

    def __init__(self, stack: EmbeddedStack, prefix: str, redis_url: str) -> None:
        self.stack = stack
        self.prefix = prefix
        self.store = redis.Redis.from_url(redis_url, decode_responses=True)

    def expected_counters(self, valid: Iterable[dict[str, object]]) -> Counter[tuple[str, str]]:
        expected: Counter[tuple[str, str]] = Counter()
        for event in valid:
            expected[(str(event["customer_id"]), COUNTER_FIELD[str(event["type"])])] += 1
        return expected

    def profile_counters(self) -> Counter[tuple[str, str]]:
        """Every event-derived counter in the database, by (customer, field)."""
        actual: Counter[tuple[str, str]] = Counter()
        for key in self.store.scan_iter("profile:*", count=1000):
            values = self.store.hmget(key, COUNTERS)
            customer = key.removeprefix("profile:")
            for name, value in zip(COUNTERS, values, strict=True):
                if value is not None:
                    actual[(customer, name)] += int(value)
        return actual

    def counted(self) -> int:
        return sum(self.profile_counters().values())

    def lost_and_double(self, valid: list[dict[str, object]]) -> tuple[int, int, int]:
        """(counted, lost, double counted) over the profile counters."""
        expected = self.expected_counters(valid)
        actual = self.profile_counters()
        lost = sum(max(0, n - actual.get(k, 0)) for k, n in expected.items())
        double = sum(max(0, n - expected.get(k, 0)) for k, n in actual.items())
        return sum(actual.values()), lost, double

    def wait_counted(self, valid: list[dict[str, object]], timeout: float = 120.0) -> None:
        """Until every valid event is in the profile counters (or the timeout)."""
        expected = sum(self.expected_counters(valid).values())

        def check() -> None:
            counted = self.counted()
            assert counted >= expected, f"{counted}/{expected} counted"

        eventually(check, timeout=timeout, interval=0.5)

    def wait_progress(self, valid: list[dict[str, object]], idle_s: float) -> tuple[bool, int]:
        """Wait while counting progresses: (True, n) once every valid event is counted,
        (False, n) once the count has not moved for `idle_s` seconds (a stall)."""
        expected = sum(self.expected_counters(valid).values())
        last, last_change = -1, time.monotonic()
        while True:
            counted = self.counted()
            if counted >= expected:
                return True, counted
            if counted != last:
                last, last_change = counted, time.monotonic()
            elif time.monotonic() - last_change > idle_s:
                return False, counted
            time.sleep(0.5)

    def committed_by_partition(self, topic: str, partitions: int = 4) -> dict[int, int | None]:
        """The worker group's committed offset per partition of `topic` (None: never)."""
        consumer = Consumer(
            {
                "bootstrap.servers": self.stack.bootstrap_servers,
                "group.id": f"{self.prefix}churn-streamer",
                "enable.auto.commit": False,
            }
        )
        try:
            committed = consumer.committed(
                [TopicPartition(f"{self.prefix}{topic}", p) for p in range(partitions)],
                timeout=10,
            )
        finally:
            consumer.close()
        return {tp.partition: (tp.offset if tp.offset >= 0 else None) for tp in committed}

    def predictions(
        self, expect: int, settle: float = 2.0, event_ids: set[str] | None = None
    ) -> list[dict[str, Any]]:
        """Prediction records, read until `expect` arrived and, with `event_ids`, until every
        one of those events has one (redelivered events add duplicates to the count)."""

        def covered(messages: list[Message]) -> bool:
            assert event_ids is not None
            seen = {orjson.loads(m.value())["event_id"] for m in messages}
            return event_ids <= seen

        messages = read_topic(
            self.stack.bootstrap_servers,
            f"{self.prefix}churn-predictions",
            expect=expect,
            timeout=120,
            settle=settle,
            complete=covered if event_ids is not None else None,
        )
        return [orjson.loads(m.value()) for m in messages]

    def dead_letters(self, expect: int, settle: float = 2.0) -> list[dict[str, Any]]:
        messages = read_topic(
            self.stack.bootstrap_servers,
            f"{self.prefix}customer-events-dlq",
            expect=expect,
            timeout=60,
            settle=settle,
        )
        letters = []
        for message in messages:
            letter = orjson.loads(message.value())
            letter["_headers"] = dict(message.headers() or [])
            letter["_raw_key"] = message.key()
            letters.append(letter)
        return letters

    def table_total(self, base_url: str) -> int:
        status, body = http("GET", f"{base_url}/api/page-views", timeout=15)
        assert status == 200, body
        return sum(int(item["total"]) for item in body["pages"])

    def committed_offsets(self, topic: str, partitions: int = 4) -> int:
        """Sum of the worker group's committed offsets on `topic` (no group join)."""
        return sum(o or 0 for o in self.committed_by_partition(topic, partitions).values())

    def figures(
        self,
        scenario: str,
        *,
        sent: int,
        valid: list[dict[str, object]],
        base_url: str | None,
        dead_expected: int = 0,
    ) -> tuple[Figures, list[dict[str, Any]], list[dict[str, Any]]]:
        """Gather every figure once the pipeline has settled; also the raw records."""
        counted, lost, double = self.lost_and_double(valid)
        figures = Figures(
            scenario, sent=sent, valid=len(valid), profiles=counted, lost=lost, double=double
        )
        valid_ids = {str(e["event_id"]) for e in valid}
        records = self.predictions(expect=len(valid), event_ids=valid_ids)
        figures.predictions = len(records)
        figures.predicted_events = len(valid_ids & {str(r["event_id"]) for r in records})
        letters = self.dead_letters(expect=dead_expected) if dead_expected else []
        figures.dead_letters = len(letters)
        figures.table_expected = sum(1 for e in valid if e["type"] == "page_view")
        if base_url is not None:
            figures.tables = self.table_total(base_url)
        return figures, records, letters


class Background(threading.Thread):
    """Publishes messages in chunks at a steady pace while a fault is injected."""

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        messages: list[tuple[bytes | None, bytes]],
        chunk: int,
        pause_s: float,
    ) -> None:
        super().__init__(daemon=True)
        self.args = (bootstrap, topic, messages, chunk, pause_s)
        self.sent = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        bootstrap, topic, messages, chunk, pause_s = self.args
        try:
            for start in range(0, len(messages), chunk):
                produce_raw(bootstrap, topic, messages[start : start + chunk])
                self.sent += len(messages[start : start + chunk])
                time.sleep(pause_s)
        except BaseException as exc:
            self.error = exc

    def finish(self, timeout: float = 120.0) -> None:
        self.join(timeout)
        assert not self.is_alive(), "producer thread did not finish"
        if self.error is not None:
            raise self.error


def wait_until(check: Callable[[], bool], timeout: float, interval: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(interval)
    return False
