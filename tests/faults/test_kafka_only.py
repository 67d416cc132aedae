"""Faults only a real Apache Kafka lets us test: transactions, a broker crash that keeps its
log, compacted changelogs.

Each scenario prints one line of figures (`FAULTS <scenario>: ...`) like the rest of the
fault suite. The waits follow progress (a count that keeps moving), never a wall clock: a
scenario fails when progress stops for a long time, not when a loaded machine is slow.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import cast

import orjson
import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Message, Producer
from confluent_kafka import TopicPartition as KafkaTopicPartition
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ResourceType,
)

from tests.support.faults import (
    KillOneOfTwo,
    Measure,
    Scenario,
    encode,
    event_ids,
    follow,
    make_events,
    page_views,
)
from tests.support.services import Worker, http

pytestmark = [pytest.mark.faults, pytest.mark.integration]

# How long a count may stand still before a scenario gives up on it.
IDLE_S = 90.0


@pytest.fixture
def kafka_scenario(scenario: Scenario) -> Scenario:
    """The test's scenario, when the session runs an embedded Apache Kafka (these faults
    need one)."""
    if scenario.stack.broker_kind != "kafka":
        pytest.skip(
            f"needs the embedded Apache Kafka (transactions, a broker restart that keeps its "
            f"log, log compaction); this session runs on {scenario.stack.broker_name}"
        )
    return scenario


def wait_for(read: Callable[[], int], target: int, what: str, idle_s: float = IDLE_S) -> int:
    """Poll `read()` until it reaches `target`; fail only once it has not moved for `idle_s`."""
    reached, value = follow(read, target, idle_s)
    assert reached, f"{what}: stuck at {value}/{target} for {idle_s:.0f}s"
    return value


def settle(read: Callable[[], int], quiet_s: float = 3.0, idle_s: float = IDLE_S) -> int:
    """The value of `read()` once it has stayed the same for `quiet_s` (at most `idle_s`)."""
    value, since = read(), time.monotonic()
    started = since
    while time.monotonic() - since < quiet_s and time.monotonic() - started < idle_s:
        time.sleep(0.5)
        now = read()
        if now != value:
            value, since = now, time.monotonic()
    return value


def read_records(
    bootstrap: str, topic: str, isolation: str, expect: int, settle_s: float = 3.0
) -> list[Message]:
    """Every record of `topic` a consumer with `isolation` (`read_committed` or
    `read_uncommitted`) reads from the start: until `expect` arrived and nothing more came
    for `settle_s`, or nothing came for IDLE_S."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"test-{isolation}-{time.monotonic_ns()}",
            "isolation.level": isolation,
            "enable.auto.commit": False,
        }
    )
    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    consumer.assign([KafkaTopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
    records: list[Message] = []
    last_record = time.monotonic()
    try:
        while True:
            batch = [m for m in consumer.consume(500, timeout=0.5) if m.error() is None]
            if batch:
                records.extend(batch)
                last_record = time.monotonic()
            quiet = time.monotonic() - last_record
            if (len(records) >= expect and quiet > settle_s) or quiet > IDLE_S:
                return records
    finally:
        consumer.close()


def committed_partitions(scenario: Scenario) -> int:
    """How many partitions of the input the workers' group has committed an offset for."""
    topic = scenario.source
    consumer = Consumer(
        {
            "bootstrap.servers": scenario.stack.bootstrap_servers,
            "group.id": f"{scenario.prefix}churn-streamer",
        }
    )
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        offsets = consumer.committed(
            [KafkaTopicPartition(topic, p) for p in partitions], timeout=10
        )
    finally:
        consumer.close()
    return sum(1 for tp in offsets if tp.offset >= 0)


def wait_for_commits_and_counts(scenario: Scenario, counted: int, fault: str) -> None:
    """Until the group has committed on every input partition and `counted` events are in
    the profile counters: a fault from then on has committed work behind it and
    uncommitted work in hand."""
    wait_for(lambda: committed_partitions(scenario), 4, "commits")
    wait_for(scenario.measure.counted, counted, f"profile counters before the {fault}")


def page_view_tables(worker: Worker) -> dict[str, int]:
    """Page totals from `/api/page-views` (gathered from every worker)."""
    status, body = http("GET", f"{worker.base_url}/api/page-views", timeout=15)
    assert status == 200, body
    return {item["page"]: int(item["total"]) for item in body["pages"]}


def settled_tables(measure: Measure, worker: Worker, expected: int) -> int:
    """The page-view tables' total once it reached `expected` and then stood still."""
    wait_for(lambda: measure.table_total(worker.base_url), expected, "tables")
    return settle(lambda: measure.table_total(worker.base_url))


def customer_page_views(worker: Worker, customers: list[str]) -> dict[str, int]:
    """`/api/customers/{id}/page-views` of each customer."""
    totals = {}
    for customer in customers:
        status, body = http("GET", f"{worker.base_url}/api/customers/{customer}/page-views")
        assert status == 200, body
        totals[customer] = int(body["total"])
    return totals


class SteadyProducer(threading.Thread):
    """Publishes events in chunks at a steady pace through one producer, as a real source
    would: an idempotent librdkafka producer that holds and retries its records while the
    broker is away (up to its 5 minute delivery timeout), so a broker crash loses nothing
    on the producing side and duplicates nothing."""

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        messages: list[tuple[bytes, bytes]],
        chunk: int,
        pause_s: float,
    ) -> None:
        super().__init__(daemon=True)
        self.topic, self.messages, self.chunk, self.pause_s = topic, messages, chunk, pause_s
        self.producer = Producer(
            {
                "bootstrap.servers": bootstrap,
                "partitioner": "murmur2_random",
                "linger.ms": 5,
                "enable.idempotence": True,
                # Its connection errors while the broker is down go to pytest's log capture.
                "logger": logging.getLogger("steady-producer"),
            }
        )
        self.queued = 0
        self.failures: list[str] = []

    def _report(self, error: KafkaError | None, _message: Message) -> None:
        if error is not None:
            self.failures.append(str(error))

    def run(self) -> None:
        for start in range(0, len(self.messages), self.chunk):
            for key, value in self.messages[start : start + self.chunk]:
                self.producer.produce(self.topic, key=key, value=value, on_delivery=self._report)
                self.queued += 1
            self.producer.poll(0)
            time.sleep(self.pause_s)

    def finish(self) -> None:
        self.join()
        left = self.producer.flush(300)
        assert left == 0, f"{left} events never delivered to the broker"
        assert not self.failures, self.failures[:3]


def test_exactly_once_sigkill_one_of_two_workers(kafka_scenario: Scenario) -> None:
    """Faust's `exactly_once` on Apache Kafka: one of two workers killed mid-stream."""
    scenario = kafka_scenario
    valid = make_events(4000, run=f"{scenario.prefix}eos", customers=200, seed=17)
    run = KillOneOfTwo(scenario, valid, chunk=200, STREAMER_PROCESSING_GUARANTEE="exactly_once")
    # Killed with committed transactions behind it and an open one in hand.
    wait_for_commits_and_counts(scenario, 1200, "kill")
    killed_at = run.kill_victim()
    done, counted = run.drain(idle_s=IDLE_S)
    assert done, f"survivor stalled: {counted} of {len(valid)} counted for {IDLE_S:.0f}s"
    survivor = run.survivor
    tables = settled_tables(scenario.measure, survivor, page_views(valid))
    survivor.stop()
    assert survivor.process is not None and survivor.process.returncode == 0

    bootstrap, topic = scenario.stack.bootstrap_servers, f"{scenario.prefix}churn-predictions"
    committed = read_records(bootstrap, topic, "read_committed", len(valid))
    everything = read_records(bootstrap, topic, "read_uncommitted", len(committed))
    predicted = [str(orjson.loads(cast(bytes, m.value()))["event_id"]) for m in committed]
    per_event = Counter(predicted)
    figures = scenario.measure.tally("exactly-once-sigkill-1-of-2", valid, predicted, tables=tables)
    duplicated = sorted(i for i, n in per_event.items() if n > 1)
    figures.report(
        f"killed after {killed_at} counted; committed prediction records for one event "
        f"more than once: {len(duplicated)}; records of aborted transactions (seen only "
        f"read_uncommitted): {len(everything) - len(committed)}; "
        f"tables off by {tables - figures.table_expected:+d}"
    )
    assert (figures.lost, figures.double) == (0, 0)
    assert figures.profiles == len(valid)
    assert set(per_event) == event_ids(valid), "a committed prediction for every event, none other"
    assert duplicated == [], f"{len(duplicated)} events with two committed predictions"
    assert figures.tables == figures.table_expected


def test_broker_sigkill_and_restart_mid_stream(kafka_scenario: Scenario) -> None:
    """The broker killed with SIGKILL mid-stream and restarted on the same log dir a few
    seconds later: one worker, never restarted, carries on by itself. The worker runs
    with the suite's STREAMER_PROCESSING_GUARANTEE (at least once unless exported)."""
    scenario, kafka = kafka_scenario, kafka_scenario.stack
    valid = make_events(3000, run=f"{scenario.prefix}brk", customers=200, seed=19)
    measure = scenario.measure
    worker = scenario.worker(scenario.env()).start()
    assert worker.process is not None
    pid = worker.process.pid
    producer = SteadyProducer(
        kafka.bootstrap_servers,
        scenario.source,
        [encode(e) for e in valid],
        chunk=100,
        pause_s=0.25,
    )
    producer.start()
    # Killed with committed offsets behind the worker and uncommitted work in hand.
    wait_for_commits_and_counts(scenario, 900, "crash")
    try:
        kafka.stop_broker(crash=True)
        crashed_at = time.monotonic()
        counted_at_crash = measure.counted()
        time.sleep(3)
    finally:
        kafka.start_broker()  # whatever happened: the session's other tests need it
    down_s = time.monotonic() - crashed_at
    counted_at_restart = measure.counted()
    producer.finish()
    expected = sum(measure.expected_counters(valid).values())
    wait_for(measure.counted, expected, "profile counters after the restart")
    resumed_s = time.monotonic() - crashed_at
    tables = settled_tables(measure, worker, page_views(valid))
    alive = worker.process.poll() is None and worker.process.pid == pid

    predicted = [str(r["event_id"]) for r in measure.predictions(expect=len(valid))]
    per_event = Counter(predicted)
    figures = measure.tally("broker-sigkill-restart", valid, predicted, tables=tables)
    figures.report(
        f"broker killed after {counted_at_crash} counted, back after {down_s:.1f}s "
        f"({counted_at_restart} counted then), all counted {resumed_s:.1f}s after the kill; "
        f"same worker process: {alive}; re-scored on redelivery "
        f"{len(predicted) - len(per_event)}; tables off by {tables - figures.table_expected:+d}"
    )
    assert alive, f"the worker did not carry on by itself:\n{worker.log_tail()}"
    assert counted_at_crash < len(valid), "the crash came after the stream was done"
    assert (figures.lost, figures.double) == (0, 0)
    assert figures.profiles == len(valid)
    assert set(per_event) == event_ids(valid), (
        "a prediction for every event (at least once), none other"
    )
    assert figures.tables >= figures.table_expected, "a page view missing from the tables"


def test_changelogs_compacted_and_tables_recovered_to_the_end(kafka_scenario: Scenario) -> None:
    """The page-view tables' changelogs are compacted topics on the broker; once the broker
    has compacted them, a worker restarted (after SIGTERM, then after SIGKILL) recovers
    its tables to the end of the changelogs: exactly the counts from before."""
    scenario, kafka = kafka_scenario, kafka_scenario.stack
    prefix = scenario.prefix
    first_wave = make_events(1500, run=f"{prefix}cmp", customers=100, seed=23)
    second_wave = make_events(1000, run=f"{prefix}cmp2", customers=100, seed=29)
    # The same customers in both waves: the second overwrites the first's counts.
    for event in second_wave:
        event["customer_id"] = str(event["customer_id"]).replace("cmp2-", "cmp-")
    valid = first_wave + second_wave
    measure = scenario.measure
    # At least once, whatever the suite runs with: with exactly_once, transaction markers
    # leave offsets without records too, and `compacted_away` would count them.
    env = scenario.env(STREAMER_PROCESSING_GUARANTEE="at_least_once")
    first = scenario.worker(env, "first").start()
    scenario.publish([encode(e) for e in first_wave])
    wait_for(measure.counted, len(first_wave), "profiles, first wave")

    admin = AdminClient({"bootstrap.servers": kafka.bootstrap_servers})
    changelogs = sorted(
        name
        for name in admin.list_topics(timeout=10).topics
        if name.startswith(f"{prefix}churn-streamer-") and name.endswith("-changelog")
    )
    assert len(changelogs) == 3, changelogs
    configs = {
        resource.name: future.result(30)
        for resource, future in admin.describe_configs(
            [ConfigResource(ResourceType.TOPIC, name) for name in changelogs]
        ).items()
    }
    policies = {name: config["cleanup.policy"].value for name, config in configs.items()}
    windowed = f"{prefix}churn-streamer-page-views-windowed-changelog"
    # Running totals are compacted; the windowed counts also expire with their windows.
    assert policies == {
        **dict.fromkeys(changelogs, "compact"),
        windowed: "compact,delete",
    }, policies
    window_retention_s = int(configs[windowed]["retention.ms"].value) / 1000
    assert window_retention_s == 3600, "STREAMER_PAGE_WINDOW_EXPIRES (default 1 h)"

    # Let the broker compact now rather than in days: small segments, any dirt cleanable,
    # the cleaner polling every half second; the second wave's writes roll the segments.
    with compacting_now(admin, changelogs):
        scenario.publish([encode(e) for e in second_wave])
        wait_for(measure.counted, len(valid), "profiles, both waves")
        compacted = wait_for(
            lambda: compacted_away(kafka.bootstrap_servers, changelogs), 1, "compaction"
        )
    views = [e for e in valid if e["type"] == "page_view"]
    pages = Counter(str(e["page"]) for e in views)
    customers = Counter(str(e["customer_id"]) for e in views)
    settled_tables(measure, first, len(views))
    before = (page_view_tables(first), customer_page_views(first, sorted(customers)))
    assert before == (dict(pages), dict(customers)), "tables differ from the events"

    first.stop()
    assert first.process is not None and first.process.returncode == 0
    second = scenario.worker(env, "second").start()  # ready: tables recovered
    after_sigterm = (page_view_tables(second), customer_page_views(second, sorted(customers)))
    assert second.process is not None
    second.process.send_signal(signal.SIGKILL)
    second.process.wait(10)
    third = scenario.worker(env, "third").start()
    after_sigkill = (page_view_tables(third), customer_page_views(third, sorted(customers)))

    predicted = [str(r["event_id"]) for r in measure.predictions(expect=len(valid))]
    tables = sum(after_sigkill[0].values())
    figures = measure.tally("changelog-recovery", valid, predicted, tables=tables)
    differing = [
        f"{name}: {len(diff(before, after))} of {len(pages)} pages and {len(customers)} customers"
        for name, after in (("SIGTERM", after_sigterm), ("SIGKILL", after_sigkill))
        if before != after
    ]
    figures.report(
        f"cleanup.policy: totals compact, windowed compact,delete "
        f"(retention {window_retention_s:.0f}s); {compacted} changelog records compacted "
        f"away; restarted after SIGTERM then SIGKILL: "
        + ("; ".join(differing) if differing else "tables equal to before both times")
    )
    assert after_sigterm == before, "tables after a SIGTERM restart differ"
    assert after_sigkill == before, "tables after a SIGKILL restart differ"
    assert (figures.lost, figures.double) == (0, 0)


@contextmanager
def compacting_now(admin: AdminClient, topics: list[str]) -> Iterator[None]:
    """The broker compacts `topics` within seconds inside the block."""

    def alter(resource: ConfigResource) -> None:
        for future in admin.incremental_alter_configs([resource]).values():
            future.result(30)

    def entry(name: str, value: str | None) -> ConfigEntry:
        operation = AlterConfigOpType.SET if value is not None else AlterConfigOpType.DELETE
        return ConfigEntry(name, value, incremental_operation=operation)

    for name in topics:
        alter(
            ConfigResource(
                ResourceType.TOPIC,
                name,
                incremental_configs=[
                    entry("segment.ms", "200"),
                    entry("min.cleanable.dirty.ratio", "0.01"),
                ],
            )
        )
    brokers = [str(broker) for broker in admin.list_topics(timeout=10).brokers]
    for broker in brokers:
        alter(broker_config(broker, entry("log.cleaner.backoff.ms", "500")))
    time.sleep(0.5)  # older than segment.ms: the next write rolls each segment
    try:
        yield
    finally:
        for broker in brokers:
            alter(broker_config(broker, entry("log.cleaner.backoff.ms", None)))


def broker_config(broker: str, entry: ConfigEntry) -> ConfigResource:
    return ConfigResource(ResourceType.BROKER, broker, incremental_configs=[entry])


def compacted_away(bootstrap: str, topics: list[str]) -> int:
    """How many records of `topics` the broker has removed by compaction: the offsets
    between each partition's start and end that no longer hold a record."""
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "unused", "enable.auto.commit": False}
    )
    try:
        ends: dict[tuple[str, int], int] = {}
        span = 0
        for topic in topics:
            for partition in consumer.list_topics(topic, timeout=10).topics[topic].partitions:
                tp = KafkaTopicPartition(topic, partition)
                low, high = consumer.get_watermark_offsets(tp, timeout=10)
                if high > low:
                    ends[(topic, partition)] = high
                    span += high - low
        consumer.assign([KafkaTopicPartition(t, p, OFFSET_BEGINNING) for t, p in ends])
        records = 0
        last: dict[tuple[str, int], int] = {}
        heard_at = time.monotonic()
        while any(last.get(tp, -1) < end - 1 for tp, end in ends.items()):
            assert time.monotonic() - heard_at < IDLE_S, "changelogs not readable to the end"
            for message in consumer.consume(1000, timeout=1.0):
                if message.error() is None:
                    records += 1
                    where = (cast(str, message.topic()), cast(int, message.partition()))
                    last[where] = cast(int, message.offset())
                    heard_at = time.monotonic()
        return span - records
    finally:
        consumer.close()


def diff(
    before: tuple[dict[str, int], dict[str, int]], after: tuple[dict[str, int], dict[str, int]]
) -> list[str]:
    """Pages and customers whose counts differ."""
    return [
        key
        for old, new in zip(before, after, strict=True)
        for key in sorted(set(old) | set(new))
        if old.get(key) != new.get(key)
    ]
