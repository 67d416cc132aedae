"""Test helpers: a Faust worker subprocess, topic readers, HTTP calls (no mocks)."""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, NewTopic

from streamer.devstack import EmbeddedStack, free_port
from streamer.devstack.processes import ChildExited, ChildNotReady
from streamer.devstack.worker import WorkerProcess, start_worker
from topics.producer import keyed_producer

WORKER_READY_TIMEOUT_S = 90.0


def http(
    method: str, url: str, body: bytes | None = None, timeout: float = 10.0
) -> tuple[int, Any]:
    """(status, parsed JSON or text) of one request; HTTP errors are returned, not raised."""
    request = urllib.request.Request(
        url, data=body, method=method, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, raw = error.code, error.read()
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode(errors="replace")


def eventually(check: Callable[[], Any], timeout: float = 60.0, interval: float = 0.25) -> Any:
    """Retry `check` until it stops raising AssertionError; return its result."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return check()
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(interval)


@dataclass
class Worker:
    """A `faust -A streamer.app worker` subprocess with its own prefix and web port."""

    env: dict[str, str]
    port: int
    log_path: Path
    extra_args: list[str] = field(default_factory=list)
    running: WorkerProcess | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def process(self) -> subprocess.Popen[bytes] | None:
        return self.running.process if self.running is not None else None

    def start(self, wait_ready: bool = True) -> Worker:
        self.running = start_worker(self.env, self.port, self.log_path, extra_args=self.extra_args)
        if wait_ready:
            self.wait_ready()
        return self

    def wait_ready(self, timeout: float = WORKER_READY_TIMEOUT_S) -> None:
        assert self.running is not None
        try:
            self.running.wait_ready(timeout)
        except ChildExited as exited:
            raise AssertionError(
                f"worker exited ({exited.returncode}):\n{self.log_tail()}"
            ) from None
        except ChildNotReady:
            raise AssertionError(f"worker not ready in {timeout}s:\n{self.log_tail()}") from None

    def stop(self, timeout: float = 30.0) -> None:
        if self.running is not None:
            self.running.stop(timeout)

    def log_tail(self, lines: int = 40) -> str:
        return self.running.log_tail(lines) if self.running is not None else ""


def worker_env(
    stack: EmbeddedStack,
    *,
    prefix: str,
    redis_db: int,
    registry: Path,
    data_dir: Path,
    **extra: str,
) -> dict[str, str]:
    """Environment of a worker isolated by topic prefix and Redis database."""
    env = {
        **os.environ,
        "KAFKA_BROKER": stack.kafka_broker,
        "REDIS_URL": f"redis://127.0.0.1:{stack.redis_port}/{redis_db}",
        "MODEL_REGISTRY": str(registry),
        "TOPIC_PREFIX": prefix,
        "STREAMER_DATA_DIR": str(data_dir),
        "STREAMER_SESSION_TIMEOUT": "6",
        "STREAMER_REBALANCE_TIMEOUT": "6",
        "STREAMER_MODEL_POLL": "0.5",
        "PYTHONUNBUFFERED": "1",
    }
    env.update(extra)
    return env


def new_worker(env: dict[str, str], log_dir: Path, name: str = "worker") -> Worker:
    return Worker(env=env, port=free_port(), log_path=log_dir / f"{name}.log")


def started_worker(
    stack: EmbeddedStack,
    tmp_path: Path,
    *,
    prefix: str,
    redis_db: int,
    registry: Path,
    **extra: str,
) -> Worker:
    """A ready worker isolated by topic prefix and Redis database, with its data directory
    and log under `tmp_path`; `extra` adds environment variables."""
    env = worker_env(
        stack,
        prefix=prefix,
        redis_db=redis_db,
        registry=registry,
        data_dir=tmp_path / "data",
        **extra,
    )
    return new_worker(env, tmp_path).start()


def ensure_topic(bootstrap: str, topic: str, partitions: int = 4) -> None:
    """Create `topic` unless it exists, as `streamer topics create` would: the test brokers,
    like many production clusters, do not create topics on first use."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    if topic in admin.list_topics(timeout=10).topics:
        return
    future = admin.create_topics([NewTopic(topic, num_partitions=partitions)])[topic]
    try:
        future.result(30)
    except KafkaException as exc:
        if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
            raise


def produce_raw(bootstrap: str, topic: str, messages: list[tuple[bytes | None, bytes]]) -> None:
    """Publish raw (key, value) pairs, murmur2-partitioned like Java clients and Faust."""
    ensure_topic(bootstrap, topic)
    producer = keyed_producer(bootstrap, {"linger.ms": 5})
    failures: list[str] = []

    def report(error: KafkaError | None, _message: Message) -> None:
        if error is not None:
            failures.append(str(error))

    for key, value in messages:
        producer.produce(topic, key=key, value=value, on_delivery=report)
        producer.poll(0)
    assert producer.flush(30) == 0
    assert not failures, failures


def read_topic(
    bootstrap: str,
    topic: str,
    expect: int,
    timeout: float = 60.0,
    settle: float = 2.0,
    complete: Callable[[list[Message]], bool] | None = None,
) -> list[Message]:
    """Read a topic from the start until `expect` messages arrived (and `complete(messages)`
    holds, when given), then `settle` seconds more to catch extras. Does not trust the high
    watermark (Tansu under-reports it)."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"test-reader-{time.monotonic_ns()}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    # Assign partitions directly: a group join on Tansu waits out the rebalance timeout.
    assigned: set[int] = set()

    def assign_new_partitions() -> None:
        # A topic the worker is still creating can list only some partitions at first.
        metadata = consumer.list_topics(topic, timeout=10).topics[topic]
        new = set(metadata.partitions) - assigned
        if new:
            consumer.incremental_assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in new])
            assigned.update(new)

    messages: list[Message] = []
    deadline = time.monotonic() + timeout
    settle_until: float | None = None
    next_metadata_check = 0.0
    try:
        while time.monotonic() < deadline:
            if settle_until is not None and time.monotonic() > settle_until:
                break
            if time.monotonic() >= next_metadata_check:
                assign_new_partitions()
                next_metadata_check = time.monotonic() + 2.0
            for message in consumer.consume(500, timeout=0.5):
                if message.error() is None:
                    messages.append(message)
            if (
                settle_until is None
                and len(messages) >= expect
                and (complete is None or complete(messages))
            ):
                settle_until = time.monotonic() + settle
    finally:
        consumer.close()
    return messages
