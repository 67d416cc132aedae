"""Faust's ``processing_guarantee="exactly_once"`` made to hold for this service.

How Faust (faust-streaming 0.15.3) runs the mode: the consumer reads ``read_committed``
and commits no offsets itself. Each topic group and partition number (``{app id}-{group}-
{partition}``) gets its own transactional aiokafka producer, opened when the partition is
assigned; a commit sends each one's input offsets to its transaction and commits it. Sends
reach a transaction only through ``app.maybe_start_producer()`` (``topic.send``, table
changelog writes), whose ``TransactionManager.send`` picks the transaction from the
*destination* topic and partition.

What that leaves open, each seen on Apache Kafka 4.4 with one of two workers killed:

1. **Outputs outside the transaction.** The agents send with ``app.producer.send`` (the
   plain producer): enriched events, prediction records and dead letters were committed on
   their own, not with the input offsets. ``send_output`` sends them in the transaction of
   the partition the event was read from (the destination would not do: the prediction and
   dead-letter topics are not consumed, so Faust's ``TransactionManager.send`` has no
   transaction for them, or no metadata and falls back to the plain producer).
2. **Offsets committed apart from their writes.** Faust snapshots the acknowledged offsets,
   then commits the transactions, which by then also hold outputs of events processed
   meanwhile (committed before their offsets: duplicates after a crash); changelog records
   still queued in Faust's producer buffer go into a later transaction than their offsets
   (lost after a crash). A ``CommitGate`` lets a commit happen only between batches, once
   the buffer has been handed to the transactions. Faust also counted the offset after
   each transaction marker twice, so its commits stopped at the first marker since the
   last commit, short of what the transaction held (``Consumer._add_gap``). And Faust
   acknowledges a message two agents read once the second is done with it, so counting
   and scoring run as one agent here (``streamer.worker.agents.exactly_once``).
3. **Rebalances.** aiokafka revokes every partition at a rebalance and Faust seeks the ones
   it keeps back to their committed offsets, yet left their transactions open with the
   output of the events it then processes again (duplicates), and left the in-memory tables
   with counts of events it counts again. Faust's revoked set was also empty (the producers
   of partitions that moved were never stopped; their next write was fenced and crashed the
   producer buffer, and the worker). Here a revocation aborts every open transaction, a
   batch begun before it is abandoned (``StaleBatch``: held back, redone from the committed
   offset), producers of partitions no longer assigned are stopped, and the tables are
   rebuilt from their committed changelogs.
4. **Table recovery stopped short.** It read changelogs up to aiokafka's
   ``last_stable_offset()``, known only from a fetch (``ConsumerThread._highwaters``).

Records fetched while stream partitions were being sought back to their committed
offsets reached the agents twice in one generation; ``aiokafka_transport`` resumes those
partitions only once sought, in both modes.

Redis writes (profile counters, scores) are outside any Kafka transaction: the enrichment
agent's dedup marks make a redone event count once there.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from contextvars import ContextVar
from typing import Any, cast

from aiokafka import AIOKafkaProducer
from aiokafka.errors import IllegalOperation
from faust.exceptions import ProducerSendError
from faust.stores.memory import Store as MemoryStore
from faust.transport.consumer import TransactionManager as FaustTransactionManager
from faust.transport.producer import ProducerBuffer as FaustProducerBuffer
from faust.types import TP, AppT, EventT, TransportT
from faust.types.enums import ProcessingGuarantee
from faust.types.tuples import FutureMessage, HeadersArg

from streamer.worker.faust_patches import aiokafka_transport

log = logging.getLogger(__name__)


class StaleBatch(Exception):
    """The batch began before a rebalance: its work went to an aborted transaction."""


class TransactionGone(ProducerSendError):
    """No open transaction for the partition: it was revoked (or never opened)."""


class Fence:
    """Rebalance epochs: a batch's writes count only within the epoch it began in."""

    def __init__(self) -> None:
        self.epoch = 0  # bumped when partitions are revoked
        self.settled = 0  # the epoch of the last completed assignment
        self.batch_epoch: ContextVar[int | None] = ContextVar("batch_epoch", default=None)

    def revoked(self) -> None:
        self.epoch += 1

    def assigned(self) -> None:
        self.settled = self.epoch

    def is_current(self, app: AppT, batch: Sequence[EventT]) -> bool:
        """Whether `batch` was read in this assignment, and no rebalance has begun since."""
        if self.epoch != self.settled:
            return False
        generation = app.consumer_generation_id
        return all(event.message.generation_id == generation for event in batch)

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Mark the work started inside the block (tasks included) with this epoch."""
        token = self.batch_epoch.set(self.epoch)
        try:
            yield
        finally:
            self.batch_epoch.reset(token)

    def check(self) -> None:
        """Raise StaleBatch if a rebalance began since the current batch did."""
        started = self.batch_epoch.get()
        if started is not None and started != self.epoch:
            raise StaleBatch(f"rebalance since the batch began (epoch {started} -> {self.epoch})")


class CommitGate:
    """Commits happen between batches, never while one is writing.

    A batch holds the gate from before its first write until its events are acknowledged;
    a commit closes it (new batches wait), waits for the batches inside to finish, then
    commits offsets and writes that match.
    """

    def __init__(self) -> None:
        self._inside = 0
        self._closed = False
        self._opened = asyncio.Event()
        self._opened.set()
        self._empty = asyncio.Event()
        self._empty.set()

    async def enter(self) -> None:
        while self._closed:
            await self._opened.wait()
        self._inside += 1
        self._empty.clear()

    def leave(self) -> None:
        self._inside -= 1
        if self._inside == 0:
            self._empty.set()

    @asynccontextmanager
    async def closed(self) -> AsyncIterator[None]:
        self._closed = True
        self._opened.clear()
        try:
            await self._empty.wait()
            yield
        finally:
            self._closed = False
            self._opened.set()


fence = Fence()
commit_gate = CommitGate()


def transactional_id(app: AppT, tp: TP) -> str:
    """Faust's transactional id for the partition an event was read from."""
    return f"{app.conf.id}-{app.assignor.group_for_topic(tp.topic)}-{tp.partition}"


async def send_output(
    event: EventT,
    topic: str,
    key: bytes | None,
    value: bytes,
    headers: HeadersArg | None = None,
    timestamp: float | None = None,
) -> None:
    """Send a record written on behalf of `event` in the transaction of `event`'s partition,
    which commits it together with `event`'s offset (stamped `timestamp`, in seconds, or
    now). Raises StaleBatch if that transaction is no longer this batch's."""
    fence.check()
    app = event.app
    producer = cast(Producer, app.producer)
    tid = transactional_id(app, event.message.tp)
    if tid not in producer._transaction_producers:
        raise StaleBatch(f"no open transaction {tid}")
    try:
        await producer.send(topic, key, value, None, timestamp, headers, transactional_id=tid)
    except IllegalOperation:
        # Not in a transaction: aborted at a revocation while this send waited for it.
        fence.check()
        raise


class ProducerBuffer(FaustProducerBuffer):
    """Faust's buffer of table changelog records, with an exact drain and a fence.

    Faust's own ``flush`` returns once the queue is empty or 0.1 s pass without a send,
    while the last records may still be on their way into a transaction. ``drain`` waits
    until every record queued before the call has been handed to its producer. A record
    queued before a rebalance began belongs to an aborted transaction and is dropped.
    """

    def __post_init__(self) -> None:
        super().__post_init__()
        self.queued = 0
        self.handled = 0
        self._progress = asyncio.Event()
        self._epochs: dict[int, int] = {}

    def put(self, fut: FutureMessage) -> None:
        self._epochs[id(fut)] = fence.epoch
        self.queued += 1
        super().put(fut)

    async def _send_pending(self, fut: FutureMessage) -> None:
        epoch = self._epochs.pop(id(fut), fence.epoch)
        try:
            if epoch == fence.epoch:
                await super()._send_pending(fut)
        except TransactionGone as exc:
            log.info("Dropped a changelog record: %s", exc)
        except IllegalOperation:
            if epoch == fence.epoch:
                raise
            # Its transaction was aborted at a revocation while the send waited for it.
        finally:
            self.handled += 1
            self._progress.set()

    async def drain(self) -> None:
        target = self.queued
        while self.handled < target:
            self._progress.clear()
            await self._progress.wait()


class Producer(aiokafka_transport.Producer):
    """Our producer; with exactly_once, the buffer above. A send into a transaction that is
    gone (its partition revoked, or never assigned) raises TransactionGone, which the
    buffer drops quietly, where Faust raised a plain ProducerSendError."""

    def __init__(
        self,
        transport: TransportT,
        loop: asyncio.AbstractEventLoop | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(transport, loop=loop, **kwargs)
        if self.app.conf.processing_guarantee == ProcessingGuarantee.EXACTLY_ONCE:
            buffer = ProducerBuffer(loop=self.loop, beacon=self.beacon)
            buffer.app = self.app
            self.buffer = buffer

    def transaction_producer(self, transactional_id: str) -> AIOKafkaProducer:
        producer = super().transaction_producer(transactional_id)
        if producer is None:
            raise TransactionGone(f"no open transaction {transactional_id}")
        return producer


class ConsumerThread(aiokafka_transport.ConsumerThread):
    """Table recovery reads changelogs up to the broker's end offsets, not the last fetch's."""

    async def _highwaters(self, partitions: list[TP]) -> Mapping[TP, int]:
        # Faust's exactly_once recovery reads to `last_stable_offset()`, which aiokafka
        # only knows from a fetch: None (read as an empty changelog) for a partition just
        # assigned, an old value for one fetched earlier. Either way recovery stopped short
        # and tables lost counts. A read-committed consumer's end offsets are the last
        # stable offsets, asked of the broker.
        consumer = self._ensure_consumer()
        return cast(Mapping[TP, int], await consumer.end_offsets(partitions))


class Consumer(aiokafka_transport.Consumer):
    """With exactly_once: commits through the gate; rebalances move the fence."""

    def _new_consumer_thread(self) -> aiokafka_transport.ConsumerThread:
        return ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def force_commit(self, topics: Any = None, start_new_transaction: bool = True) -> bool:
        if not self.in_transaction:
            return await super().force_commit(topics, start_new_transaction=start_new_transaction)
        async with commit_gate.closed():
            buffer = self.app.producer.buffer
            if isinstance(buffer, ProducerBuffer):
                await buffer.drain()
            return await super().force_commit(topics, start_new_transaction=start_new_transaction)

    async def _add_gap(self, tp: TP, offset_from: int, offset_to: int) -> None:
        # Faust records the offsets skipped before the message at `offset_to` as a gap that
        # includes `offset_to` itself, so that offset is counted twice and the run of
        # committable offsets ends there: a commit stops just past the first transaction
        # marker since the last commit, while the transaction holds the writes of every
        # event acknowledged. Read committed, every transaction leaves such a gap.
        if self.in_transaction:
            offset_to -= 1
        await super()._add_gap(tp, offset_from, offset_to)

    async def on_partitions_revoked(self, revoked: set[TP]) -> None:
        if self.in_transaction:
            fence.revoked()
        await super().on_partitions_revoked(revoked)

    async def on_partitions_assigned(self, assigned: set[TP], generation_id: int = 0) -> None:
        await super().on_partitions_assigned(assigned, generation_id)
        if self.in_transaction:
            fence.assigned()


class TransactionManager(FaustTransactionManager):
    """Aborts at revocation, keeps producers for assigned partitions only, rebuilds tables.

    Its sends (table changelogs) are Faust's: the transaction of the destination partition,
    through `Producer`, which refuses one that is gone."""

    async def on_partitions_revoked(self, revoked: set[TP]) -> None:
        await super().on_partitions_revoked(revoked)
        producer = cast(Producer, self.producer)
        for tid in sorted(producer._transaction_producers):
            await producer.abort_transaction(tid)

    async def on_rebalance(
        self, assigned: set[TP], revoked: set[TP], newly_assigned: set[TP]
    ) -> None:
        producer = cast(Producer, self.producer)
        keep = self._tps_to_transactional_ids(assigned)
        gone = sorted(set(producer._transaction_producers) - keep)
        if gone:
            log.info("Stopping transactional producers of partitions not assigned: %s", gone)
        for tid in gone:
            await producer.stop_transaction(tid)
        self._forget_uncommitted_tables()
        await super().on_rebalance(assigned, revoked, newly_assigned)

    def _forget_uncommitted_tables(self) -> None:
        """Drop the tables' contents: recovery reads them back from the committed changelog,
        without the counts of the aborted transactions."""
        tables = self.app.tables
        for table in tables.values():
            store = table.data
            if not isinstance(store, MemoryStore):
                raise TypeError(f"exactly_once here supports the memory store, not {store!r}")
            store.data.clear()
        recovery = tables.recovery  # type: ignore[attr-defined]
        recovery.active_offsets.clear()
        recovery.standby_offsets.clear()


class Transport(aiokafka_transport.Transport):
    Consumer = Consumer
    Producer = Producer
    TransactionManager = TransactionManager
