"""`streamer dev`: real servers on loopback, the contract's lines, a clean stop on SIGTERM."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import redis
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

pytestmark = pytest.mark.integration

STREAMER = str(Path(sys.executable).with_name("streamer"))


def accepts(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
        return True
    return False


def test_dev_prints_addresses_serves_and_stops_on_sigterm(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [STREAMER, "dev"], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        broker_line = process.stdout.readline().strip()
        redis_line = process.stdout.readline().strip()
        assert broker_line.startswith("KAFKA_BROKER=kafka://127.0.0.1:"), broker_line
        assert redis_line.startswith("REDIS_URL=redis://127.0.0.1:"), redis_line
        kafka_port = int(broker_line.rsplit(":", 1)[1])
        redis_url = redis_line.split("=", 1)[1]

        assert redis.Redis.from_url(redis_url).ping()
        assert accepts(kafka_port)
        stack_env = (tmp_path / ".streamer" / "stack.env").read_text()
        assert broker_line in stack_env and redis_line in stack_env

        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
        assert not accepts(kafka_port)
        assert not (tmp_path / ".streamer" / "stack.env").exists()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_dev_on_a_busy_port_fails_with_one_line(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run(
            [STREAMER, "dev", "--kafka-port", str(port)],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "broker" in lines[0].lower(), result.stderr


def test_dev_kafka_without_java_fails_with_one_line(tmp_path: Path) -> None:
    bare = {**os.environ, "PATH": str(tmp_path)}  # no java, no mvn
    result = subprocess.run(
        [STREAMER, "dev", "--broker", "kafka"],
        cwd=tmp_path,
        env=bare,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "--broker kafka needs Java 17+" in lines[0] and "no Java on PATH" in lines[0]


def test_dev_auto_without_java_runs_tansu_and_says_why(tmp_path: Path) -> None:
    bare = {**os.environ, "PATH": str(tmp_path)}
    process = subprocess.Popen(
        [STREAMER, "dev"], cwd=tmp_path, env=bare, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None and process.stderr is not None
        assert process.stdout.readline().startswith("KAFKA_BROKER=kafka://127.0.0.1:")
        said = process.stderr.readline()
        assert said.startswith("broker: Tansu (no Java on PATH"), said
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0


@pytest.mark.skipif(not shutil.which("java"), reason="Apache Kafka needs Java")
def test_dev_kafka_honours_transactions(tmp_path: Path) -> None:
    """A read_committed consumer never sees an aborted transaction's records (Tansu's
    would: it accepts transactions without honouring them)."""
    process = subprocess.Popen(
        [STREAMER, "dev", "--broker", "kafka"], cwd=tmp_path, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None and process.stderr is not None
        bootstrap = process.stdout.readline().strip().removeprefix("KAFKA_BROKER=kafka://")
        assert process.stderr.readline().startswith("broker: Apache Kafka")
        topic = "transactions"
        admin = AdminClient({"bootstrap.servers": bootstrap})
        admin.create_topics([NewTopic(topic, 1)])[topic].result(30)
        producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": "dev-test"})
        producer.init_transactions(30)
        producer.begin_transaction()
        producer.produce(topic, b"aborted")
        producer.abort_transaction(30)
        producer.begin_transaction()
        producer.produce(topic, b"committed")
        producer.commit_transaction(30)
        consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": "dev-test",
                "isolation.level": "read_committed",
                "auto.offset.reset": "earliest",
            }
        )
        consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        seen: list[bytes] = []
        while b"committed" not in seen:
            message = consumer.poll(10)
            assert message is not None, f"nothing more to read after {seen}"
            if message.error() is None:
                seen.append(message.value())
        consumer.close()
        assert seen == [b"committed"]
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
