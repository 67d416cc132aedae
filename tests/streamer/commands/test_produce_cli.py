"""`streamer produce` on a broker that creates no topics on first use: it declares them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from streamer.devstack import EmbeddedStack
from tests.support.services import read_topic
from topics.codec import decode_event

pytestmark = pytest.mark.integration

STREAMER = str(Path(sys.executable).with_name("streamer"))


def test_produce_declares_the_topics_and_delivers_every_event(
    stack: EmbeddedStack, topic_prefix: str, tmp_path: Path
) -> None:
    env = {**os.environ, "KAFKA_BROKER": stack.kafka_broker, "TOPIC_PREFIX": topic_prefix}
    done = subprocess.run(
        [STREAMER, "produce", "--events", "50", "--rate", "0", "--seed", "3"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "delivered 50, failed 0" in done.stdout
    messages = read_topic(stack.bootstrap_servers, f"{topic_prefix}customer-events", expect=50)
    assert len(messages) == 50
    for message in messages:
        event = decode_event(message.value())
        assert message.key() == event.customer_id.encode()
