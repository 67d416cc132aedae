"""The fixes in `streamer.worker.faust_patches.aiokafka_transport`,
each on a real broker with aiokafka's own clients.

The takeover scenarios that found them are in the fault suite (SIGKILL of one of two
workers); these pin each cause down.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from streamer.devstack import EmbeddedStack
from streamer.worker.faust_patches.aiokafka_transport import seek_to_committed, track_topic
from tests.support.services import produce_raw

pytestmark = pytest.mark.integration


@pytest.fixture
def kafka(stack: EmbeddedStack) -> Iterator[EmbeddedStack]:
    if stack.broker_kind == "tansu":
        pytest.skip("Tansu answers metadata and offset requests differently (see field notes)")
    yield stack


def new_topic(stack: EmbeddedStack, partitions: int = 1) -> str:
    name = f"transport-{time.monotonic_ns()}"
    admin = AdminClient({"bootstrap.servers": stack.bootstrap_servers})
    admin.create_topics([NewTopic(name, num_partitions=partitions)])[name].result(30)
    return name


def test_producer_flush_completes_after_a_send_to_a_new_topic(kafka: EmbeddedStack) -> None:
    """A batch queued for a topic known from an all-topics metadata reply must not lose its
    leader when a send to a new topic narrows the producer's metadata requests."""
    first = new_topic(kafka, partitions=2)

    async def scenario() -> tuple[bool, bool]:
        producer = AIOKafkaProducer(
            bootstrap_servers=kafka.bootstrap_servers, linger_ms=300, request_timeout_ms=120_000
        )
        await producer.start()
        try:
            # As after Faust's topic declaration: metadata of every topic, none tracked.
            await producer.client.force_metadata_update()
            track_topic(producer, first)
            await producer.send(first, b"queued", key=b"k")  # waits in the accumulator
            second = new_topic(kafka, partitions=2)
            track_topic(producer, second)
            await producer.send(second, b"v", key=b"k")
            still_known = producer.client.cluster.partitions_for_topic(first) is not None
            try:
                # Without tracking this waits for the request timeout (here 120 s).
                await asyncio.wait_for(producer.flush(), 30)
                flushed = True
            except TimeoutError:
                flushed = False
            return still_known, flushed
        finally:
            await producer.stop()

    still_known, flushed = asyncio.run(scenario())
    assert still_known, "the first topic dropped out of the producer's metadata"
    assert flushed, "flush() waited on a batch whose topic lost its metadata"


@pytest.mark.parametrize(
    ("committed", "expected_position"),
    [(None, 0), (0, 0), (3, 3)],
    ids=["never-committed", "committed-0", "committed-3"],
)
def test_seek_to_committed_moves_every_partition(
    kafka: EmbeddedStack, committed: int | None, expected_position: int
) -> None:
    """A consumer that has read past its committed offset is moved back to it, also when
    there is none (to the start, as `auto_offset_reset=earliest`) or it is 0."""
    topic = new_topic(kafka)
    produce_raw(kafka.bootstrap_servers, topic, [(b"k", str(i).encode()) for i in range(10)])
    tp = TopicPartition(topic, 0)

    async def scenario() -> tuple[int, int]:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=kafka.bootstrap_servers,
            group_id=f"seek-{topic}",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        await consumer.start()
        try:
            consumer.assign([tp])
            read = 0
            while read < 10:
                batch = await consumer.getmany(tp, timeout_ms=1000)
                read += sum(len(records) for records in batch.values())
            if committed is not None:  # the position is now past the committed offset
                await consumer.commit({tp: committed})
            before = await consumer.position(tp)
            await seek_to_committed(consumer, reset="earliest")
            return before, await consumer.position(tp)
        finally:
            await consumer.stop()

    before, after = asyncio.run(scenario())
    assert before == 10
    assert after == expected_position
