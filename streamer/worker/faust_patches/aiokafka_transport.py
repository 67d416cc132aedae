"""Faust's aiokafka transport (faust-streaming 0.15, aiokafka 0.14) with the fixes below, and
the fetch wait taken from STREAMER_FETCH_MAX_WAIT.

The first two were found on Apache Kafka with two workers, one killed with SIGKILL
mid-stream; the survivor took over the dead worker's partitions and then lost events or hung.

1. **Takeover skipped or stalled on a backlog** (faust-streaming/faust#216,
   robinhood/faust#681). A fetch that began before a rebalance can return records of
   partitions assigned during it while Faust's flow is still stopped. Faust drops them and
   seeks every partition back to its committed offset with aiokafka's ``seek_to_committed``,
   which only seeks ``if offset and offset > 0``: a partition with no committed offset (its
   previous owner died before its first commit) or with 0 keeps its position past the
   dropped records. Measured: the survivor went idle with those records unprocessed, or,
   when it later read and committed beyond them, lost them. Dropped changelog records
   (never committed) likewise left table recovery waiting for good. Here ``getmany`` seeks
   each partition back to its first record it did not deliver, and ``seek_to_committed``
   (still used by table recovery) also moves partitions with no committed offset (to where
   ``consumer_auto_offset_reset`` starts) or with 0. After table recovery, stream
   partitions are resumed only once sought: Faust resumed them first, so records fetched
   during the seek reached the agents twice and a run of them was never acknowledged.

2. **A rebalance hung in "Flush producer buffer".** aiokafka's producer asks for metadata of
   every topic until the first send to a topic it does not know yet (``add_topic`` in
   ``AIOKafkaClient._wait_on_metadata``); from then on it asks only for the topics it
   tracks, and each reply replaces the whole partition map. Topics it had sent to without
   tracking them (their partitions known from an all-topics reply) drop out, their queued
   batches lose their leader and wait out the request timeout (1,200 s in Faust), and every
   ``flush()`` waits with them. Here every topic is tracked from its first send. Upstream,
   ``_wait_on_metadata`` would track a topic even when its partitions are already known; no
   report of it was found in aiokafka's tracker.

3. **A table's agent crashed at start** with ``PartitionsMismatch`` ("changelog has 0
   partitions"), seen once in CI: see ``ConsumerThread.topic_partitions``.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Iterable, Mapping
from collections.abc import Set as AbstractSet
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import IllegalStateError
from aiokafka.structs import RecordMetadata
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP, Message
from faust.types.tuples import HeadersArg

from streamer.settings import get_settings

log = logging.getLogger(__name__)


class ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    """Bounded fetch wait; seeks partitions without a committed offset to where the reset
    policy starts."""

    def _create_worker_consumer(self, transport: Any) -> AIOKafkaConsumer:
        # Faust hard-codes a 1.5 s fetch wait. Apache Kafka answers a fetch as soon as data
        # arrives, so there that is only the idle poll interval; brokers that hold the fetch
        # for the full wait (Tansu does) add it to the latency of every stage.
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = int(get_settings().worker.fetch_max_wait * 1000)
        return consumer

    def topic_partitions(self, topic: str) -> int | None:
        # aiokafka's group metadata snapshot holds 0 for a subscribed topic its last
        # metadata reply did not list yet (a changelog topic created as the worker
        # started). Faust took that for the changelog's partition count and crashed the
        # counting agent with PartitionsMismatch at its first table write (seen once in
        # CI). No topic has 0 partitions: report it as not known yet, as Faust expects.
        return super().topic_partitions(topic) or None

    async def seek_to_committed(self) -> Mapping[TP, int]:
        return await self.call_thread(self._seek_to_committed)

    async def _seek_to_committed(self) -> Mapping[TP, int]:
        # Faust's signature; None (never committed) is what aiokafka returns too.
        return await seek_to_committed(  # type: ignore[return-value]
            self._ensure_consumer(),
            reset=self.app.conf.consumer_auto_offset_reset,
            # Changelogs are never committed; table recovery positions them itself.
            skip_topics=self.app.tables.changelog_topics,
        )


async def seek_to_committed(
    consumer: AIOKafkaConsumer, reset: str, skip_topics: AbstractSet[str] = frozenset()
) -> dict[TP, int | None]:
    """Seek every assigned partition to its committed offset, including 0; one with none
    to where `reset` (`earliest`/`latest`) starts. Returns the committed offsets."""
    committed: dict[TP, int | None] = {}
    never_committed = []
    for tp in consumer.assignment():
        offset = await consumer.committed(tp)
        committed[tp] = offset
        if offset is not None:
            consumer.seek(tp, offset)
        elif tp.topic not in skip_topics:
            never_committed.append(tp)
    if never_committed:
        log.info("Seek: no committed offset for %s, to %s", sorted(never_committed), reset)
        if reset == "latest":
            await consumer.seek_to_end(*never_committed)
        else:
            await consumer.seek_to_beginning(*never_committed)
    return committed


class Consumer(faust_aiokafka.Consumer):
    """Never moves past a fetched record it did not hand to the agents."""

    # Stream partitions whose fetching waits for the seek to their committed offsets.
    _resume_after_seek: set[TP] | None = None

    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        return ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    def resume_partitions(self, tps: Iterable[TP]) -> None:
        # At the end of table recovery Faust resumes the stream partitions, then seeks them
        # to their committed offsets. Records fetched in between reached the agents while
        # the seek was under way, and again after it: redelivered at best, and in 1 run of
        # 10 a run of them was never acknowledged, so commits stopped there for good. Here
        # stream partitions are resumed once sought (Faust resumes them only before a seek).
        tps = set(tps)
        streams = {tp for tp in tps if not self._is_changelog_tp(tp)}
        if streams:
            self._resume_after_seek = (self._resume_after_seek or set()) | streams
        super().resume_partitions(tps - streams)

    async def perform_seek(self) -> None:
        try:
            await super().perform_seek()
        finally:
            waiting, self._resume_after_seek = self._resume_after_seek, None
            if waiting:
                super().resume_partitions(waiting & self.assignment())

    async def getmany(self, timeout: float) -> AsyncIterator[tuple[TP, Message]]:
        """Faust's `Consumer.getmany`, except that records it does not deliver (flow stopped
        for a rebalance, partition paused) are fetched again: each such partition is sought
        back to its first undelivered record. Faust dropped them, seeking every partition to
        its committed offset when the flow was stopped and not at all otherwise: a dropped
        changelog record then stalled table recovery for good, a dropped input record of a
        partition with no committed offset was skipped.

        Only while the generation that fetched them lasts: a new assignment has already
        put every partition back at its committed offset.
        """
        records, active_partitions = await self._wait_next_records(timeout)
        generation_id = self.app.consumer_generation_id
        if records is None or self.should_stop:
            return
        next_offsets = {tp: batch[0].offset for tp, batch in records.items() if batch}
        held: set[TP] = set()
        if self.flow_active:
            for tp, record in self.scheduler.iterate(records):
                if not self.flow_active or self.app.consumer_generation_id != generation_id:
                    break
                if tp in held:
                    continue
                if (
                    active_partitions is None
                    or tp in active_partitions
                    or tp in self._buffered_partitions
                ):
                    self.app.monitor.track_tp_end_offset(tp, self.highwater(tp))
                    yield tp, self._to_message(tp, record)
                    next_offsets[tp] = record.offset + 1
                else:
                    held.add(tp)  # this and its later records wait until tp is active
        if self.app.consumer_generation_id != generation_id:
            return
        undelivered = {
            tp: offset for tp, offset in next_offsets.items() if offset <= records[tp][-1].offset
        }
        for tp, offset in undelivered.items():
            with contextlib.suppress(IllegalStateError):  # not assigned any more
                await self.seek(tp, offset)
        if undelivered:
            log.info("Fetching again records not delivered: %s", undelivered)


class Producer(faust_aiokafka.Producer):
    """Tracks the metadata of every topic it sends to, from the first send on."""

    async def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        partition: int | None,
        timestamp: float | None,
        headers: HeadersArg | None,
        *,
        transactional_id: str | None = None,
    ) -> Awaitable[RecordMetadata]:
        if transactional_id:
            track_topic(self.transaction_producer(transactional_id), topic)
        else:
            track_topic(self._producer, topic)
        return await super().send(
            topic, key, value, partition, timestamp, headers, transactional_id=transactional_id
        )

    def transaction_producer(self, transactional_id: str) -> AIOKafkaProducer | None:
        """The open transaction's producer a send with `transactional_id` goes through."""
        return self._transaction_producers.get(transactional_id)

    def key_partition(self, topic: str, key: bytes) -> TP:
        track_topic(self._producer, topic)
        return super().key_partition(topic, key)


def track_topic(producer: AIOKafkaProducer | None, topic: str) -> None:
    """Make `producer` keep `topic` in every metadata request from now on."""
    if producer is None:
        return
    client: Any = producer.client
    if topic not in client._topics:
        client.add_topic(topic)


class Transport(faust_aiokafka.Transport):
    Consumer = Consumer
    Producer = Producer
