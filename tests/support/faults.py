"""Figures of a fault scenario: what was sent, what the pipeline counted, what it lost.

Everything is measured from the real outputs: profile counters in Redis, the page-view
tables over HTTP, the `churn-predictions` and dead-letter topics. `Scenario` is where a
scenario runs, `KillOneOfTwo` the steps of the SIGKILL scenario the suites share.
"""

from __future__ import annotations

import random
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import redis
from confluent_kafka import Consumer, Message, TopicPartition

from streamer.devstack import EmbeddedStack
from tests.support.services import (
    Worker,
    eventually,
    http,
    new_worker,
    produce_raw,
    read_topic,
    worker_env,
)

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


def event_ids(events: Iterable[dict[str, object]]) -> set[str]:
    return {str(e["event_id"]) for e in events}


def page_views(events: Iterable[dict[str, object]]) -> int:
    """What the page-view tables should total once `events` are counted."""
    return sum(1 for e in events if e["type"] == "page_view")


def customer_page_views(events: Iterable[dict[str, object]]) -> Counter[str]:
    """What the per-customer page-view table should hold once `events` are counted."""
    return Counter(str(e["customer_id"]) for e in events if e["type"] == "page_view")


# How long the page-view tables may stand still below their expected total before a
# figure takes them as they are.
TABLE_IDLE_S = 20.0


def follow(read: Callable[[], int], target: int, idle_s: float) -> tuple[bool, int]:
    """Poll `read()` while it moves: (True, value) once it reaches `target`, (False, value)
    once it has not moved for `idle_s` seconds (a stall, not a slow machine)."""
    last, moved_at = None, time.monotonic()
    while True:
        value = read()
        if value >= target:
            return True, value
        if value != last:
            last, moved_at = value, time.monotonic()
        elif time.monotonic() - moved_at > idle_s:
            return False, value
        time.sleep(0.5)


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

    def report(self, *notes: str) -> None:
        """Print the line the suite prints, with `notes` added (empty ones left out)."""
        self.notes.extend(note for note in notes if note)
        print(self.line())


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
        return follow(self.counted, sum(self.expected_counters(valid).values()), idle_s)

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

        complete = covered if event_ids is not None else None
        messages = self._read("churn-predictions", expect, 120, settle, complete)
        return [orjson.loads(m.value()) for m in messages]

    def dead_letters(self, expect: int, settle: float = 2.0) -> list[dict[str, Any]]:
        messages = self._read("customer-events-dlq", expect, 60, settle)
        letters = []
        for message in messages:
            letter = orjson.loads(message.value())
            letter["_headers"] = dict(message.headers() or [])
            letter["_raw_key"] = message.key()
            letters.append(letter)
        return letters

    def _read(
        self,
        topic: str,
        expect: int,
        timeout: float,
        settle: float,
        complete: Callable[[list[Message]], bool] | None = None,
    ) -> list[Message]:
        """`read_topic` on this prefix's `topic`."""
        return read_topic(
            self.stack.bootstrap_servers,
            f"{self.prefix}{topic}",
            expect=expect,
            timeout=timeout,
            settle=settle,
            complete=complete,
        )

    def positions(self, topic: str, expect: int) -> list[tuple[str, int, int]]:
        """(event_id, partition, offset) of every record on `topic` (read until `expect`
        arrived, then 2 s more): input events, enriched events or prediction records."""
        positions = []
        for message in self._read(topic, expect, 120, 2.0):
            value = orjson.loads(message.value())
            event_id = value["event_id"] if "event_id" in value else value["event"]["event_id"]
            positions.append((str(event_id), message.partition(), message.offset()))
        return positions

    def table_total(self, base_url: str) -> int:
        status, body = http("GET", f"{base_url}/api/page-views", timeout=15)
        assert status == 200, body
        return sum(int(item["total"]) for item in body["pages"])

    def windowed_and_customer_views(
        self, base_url: str, valid: Iterable[dict[str, object]]
    ) -> tuple[int, Counter[str]]:
        """The current window's page views over every page, and each customer's page views
        as `/api/customers/{id}/page-views` answers (customers of `valid`)."""
        status, body = http("GET", f"{base_url}/api/page-views", timeout=15)
        assert status == 200, body
        windowed = sum(int(item["current_window"]) for item in body["pages"])
        per_customer: Counter[str] = Counter()
        for customer in sorted({str(e["customer_id"]) for e in valid}):
            status, body = http("GET", f"{base_url}/api/customers/{customer}/page-views")
            assert status == 200, body
            per_customer[customer] = int(body["total"])
        return windowed, +per_customer

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
        counters = self.lost_and_double(valid)
        records = self.predictions(expect=len(valid), event_ids=event_ids(valid))
        letters = self.dead_letters(expect=dead_expected) if dead_expected else []
        tables = 0
        if base_url is not None:
            # Counting is an agent of its own: it may still be behind when every prediction
            # exists, so the tables are followed while they move, not read once.
            url = base_url
            _, tables = follow(lambda: self.table_total(url), page_views(valid), TABLE_IDLE_S)
        predicted = [str(r["event_id"]) for r in records]
        figures = self.tally(
            scenario, valid, predicted, tables=tables, sent=sent, counters=counters
        )
        figures.dead_letters = len(letters)
        return figures, records, letters

    def tally(
        self,
        scenario: str,
        valid: list[dict[str, object]],
        predicted: list[str],
        *,
        tables: int,
        sent: int | None = None,
        counters: tuple[int, int, int] | None = None,
    ) -> Figures:
        """The figures of a settled pipeline from the profile counters (read now unless
        `counters` were read before), the event ids of the prediction records the caller
        read and the page-view tables' total. `sent` defaults to the valid events."""
        counted, lost, double = self.lost_and_double(valid) if counters is None else counters
        return Figures(
            scenario,
            sent=len(valid) if sent is None else sent,
            valid=len(valid),
            profiles=counted,
            tables=tables,
            table_expected=page_views(valid),
            predictions=len(predicted),
            predicted_events=len(event_ids(valid) & set(predicted)),
            lost=lost,
            double=double,
        )


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


class Scenario:
    """Where one fault scenario runs: the session's broker and Redis, a topic prefix and a
    Redis database of its own, the model registry and a folder for logs and worker data.
    As a context manager it stops every worker it made on the way out."""

    def __init__(
        self, stack: EmbeddedStack, prefix: str, redis_db: int, registry: Path, folder: Path
    ) -> None:
        self.stack, self.prefix, self.redis_db = stack, prefix, redis_db
        self.registry, self.folder = registry, folder
        self.redis_url = f"redis://127.0.0.1:{stack.redis_port}/{redis_db}"
        self.measure = Measure(stack, prefix, self.redis_url)
        self.source = f"{prefix}customer-events"
        self.workers: list[Worker] = []

    def env(self, **extra: str) -> dict[str, str]:
        """A worker's environment; its local data in `<folder>/data` unless `extra` says."""
        return worker_env(
            self.stack,
            prefix=self.prefix,
            redis_db=self.redis_db,
            registry=self.registry,
            data_dir=self.folder / "data",
            **extra,
        )

    def worker(self, env: dict[str, str], name: str = "worker") -> Worker:
        """A worker (not started yet) logging to `<folder>/<name>.log`."""
        worker = new_worker(env, self.folder, name)
        self.workers.append(worker)
        return worker

    def publish(self, messages: list[tuple[bytes | None, bytes]]) -> None:
        produce_raw(self.stack.bootstrap_servers, self.source, messages)

    def publish_in_background(
        self, events: list[dict[str, object]], chunk: int, pause_s: float
    ) -> Background:
        """`events` published in chunks of `chunk` every `pause_s` seconds from now on."""
        producer = Background(
            self.stack.bootstrap_servers,
            self.source,
            [encode(e) for e in events],
            chunk=chunk,
            pause_s=pause_s,
        )
        producer.start()
        return producer

    def __enter__(self) -> Scenario:
        return self

    def __exit__(self, *_exc: object) -> None:
        for worker in self.workers:
            worker.stop()


class KillOneOfTwo:
    """The SIGKILL scenario: two workers share the input while `valid` is published at a
    steady pace; the victim is killed with SIGKILL, the survivor must take over its
    partitions and count every event once. Each test picks the moment of the kill."""

    def __init__(
        self,
        scenario: Scenario,
        valid: list[dict[str, object]],
        *,
        chunk: int,
        pause_s: float = 0.3,
        **env: str,
    ) -> None:
        """Starts both workers (each with its own local data), then the producer."""
        self.scenario, self.valid = scenario, valid
        survivor_env = scenario.env(**env)
        victim_env = {**survivor_env, "STREAMER_DATA_DIR": str(scenario.folder / "data2")}
        self.survivor = scenario.worker(survivor_env, "survivor")
        self.victim = scenario.worker(victim_env, "victim")
        self.survivor.start()
        self.victim.start()
        self.producer = scenario.publish_in_background(valid, chunk=chunk, pause_s=pause_s)

    def kill_victim(self) -> int:
        """SIGKILL the victim; the events counted once it is gone."""
        assert self.victim.process is not None
        self.victim.process.send_signal(signal.SIGKILL)
        self.victim.process.wait(10)
        return self.scenario.measure.counted()

    def drain(self, idle_s: float) -> tuple[bool, int]:
        """The rest published, then counted: (True, counted) once every event is,
        (False, counted) once counting has stood still for `idle_s` (a stall)."""
        self.producer.finish()
        return self.scenario.measure.wait_progress(self.valid, idle_s)
