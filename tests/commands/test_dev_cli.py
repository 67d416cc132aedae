"""`streamer dev`: real servers on loopback, the contract's lines, a clean stop on SIGTERM."""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import redis

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
