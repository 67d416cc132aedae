"""A worker with a wrong KAFKA_BROKER or REDIS_URL stops at once with one line naming it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from streamer.devstack import EmbeddedStack, free_port

pytestmark = pytest.mark.integration

SECRET = "hunter2-secret"


def _start(tmp_path: Path, command: list[str], **env: str) -> subprocess.Popen[str]:
    base = {k: v for k, v in os.environ.items() if k not in ("KAFKA_BROKER", "REDIS_URL")}
    return subprocess.Popen(
        command,
        cwd=tmp_path,
        env={**base, "STREAMER_DATA_DIR": str(tmp_path / "data"), **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _faust(port: int) -> list[str]:
    return [sys.executable, "-m", "faust", "-A", "streamer.app", "worker", "--web-port", str(port)]


def _finish(process: subprocess.Popen[str], timeout: float = 90) -> tuple[int, str]:
    out, err = process.communicate(timeout=timeout)
    return process.returncode, out + err


def _last_line(output: str) -> str:
    return output.strip().splitlines()[-1]


@pytest.mark.parametrize("launcher", ["faust", "streamer"])
def test_malformed_addresses_stop_the_worker_with_one_line(tmp_path: Path, launcher: str) -> None:
    command = (
        _faust(free_port())
        if launcher == "faust"
        else [str(Path(sys.executable).with_name("streamer")), "worker"]
    )
    code, output = _finish(_start(tmp_path, command, KAFKA_BROKER="localhost:9092"))
    assert code == 2
    assert output.strip() == (
        "streamer: error: KAFKA_BROKER must look like kafka://host:port, got 'localhost:9092'"
    )
    code, output = _finish(_start(tmp_path, command, REDIS_URL=f"redis://:{SECRET}@cache:port/0"))
    assert code == 2
    assert output.strip().startswith("streamer: error: REDIS_URL must look like redis://")
    assert SECRET not in output


def test_unreachable_broker_or_redis_fail_fast_naming_the_variable(
    stack: EmbeddedStack, tmp_path: Path
) -> None:
    dead_kafka, dead_redis = free_port(), free_port()
    no_broker = _start(
        tmp_path,
        _faust(free_port()),
        KAFKA_BROKER=f"kafka://127.0.0.1:{dead_kafka}",
        REDIS_URL=f"redis://127.0.0.1:{stack.redis_port}/0",
    )
    no_redis = _start(
        tmp_path,
        _faust(free_port()),
        KAFKA_BROKER=stack.kafka_broker,
        REDIS_URL=f"redis://:{SECRET}@127.0.0.1:{dead_redis}/0",
    )
    code, output = _finish(no_broker)
    assert code == 2
    assert "Traceback" not in output
    assert _last_line(output).startswith(
        f"streamer: error: KAFKA_BROKER kafka://127.0.0.1:{dead_kafka} is unreachable"
    )
    code, output = _finish(no_redis)
    assert code == 2
    assert "Traceback" not in output
    assert _last_line(output).startswith(
        f"streamer: error: REDIS_URL redis://:***@127.0.0.1:{dead_redis}/0 is unreachable"
    )
    assert SECRET not in output


def test_a_topic_the_worker_may_not_create_stops_it_naming_the_topic(
    stack: EmbeddedStack, tmp_path: Path, topic_prefix: str
) -> None:
    """The broker refuses the worker's topics (here: more replicas than brokers, as a
    policy or missing permission would); the worker exits 2 naming the first missing one
    instead of running without it."""
    if stack.broker_kind == "tansu":
        pytest.skip("Tansu accepts any replication factor")
    process = _start(
        tmp_path,
        _faust(free_port()),
        KAFKA_BROKER=stack.kafka_broker,
        REDIS_URL=f"redis://127.0.0.1:{stack.redis_port}/0",
        TOPIC_PREFIX=topic_prefix,
        STREAMER_REPLICATION_FACTOR="3",
    )
    code, output = _finish(process)
    assert code == 2
    assert "Traceback" not in output
    line = _last_line(output)
    assert line.startswith(
        f"streamer: error: topic {topic_prefix}customer-events does not exist"
    ), line
    assert "could not be created" in line and "streamer topics create" in line
