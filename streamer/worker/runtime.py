"""The worker's runtime resources, opened when the worker starts and closed when it stops.

`runtime` is a `mode.Service` attached to the Faust app: Redis and the model are opened in
its start hook, never at import. Agents call `await runtime.wait_started()` first.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import socket
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from typing import Any, TypeVar, cast

import redis.asyncio as aioredis
import redis.exceptions
from confluent_kafka import KafkaException
from faust.tables.manager import TableManager
from faust.types import EventT, StreamT
from mode import Service
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from models.registry import ModelRegistry
from streamer.connections import librdkafka_config, redis_client_options
from streamer.serving.models import ModelHolder
from streamer.store.profiles import EventUpdate, RedisProfileStore, ScoreUpdate
from streamer.worker import metrics
from streamer.worker.app import app, settings
from streamer.worker.faust_patches.transactions import StaleBatch, commit_gate, fence
from topics.admin import TopicsMissing, ensure_topics
from topics.catalogue import bootstrap_servers

log = logging.getLogger(__name__)
T = TypeVar("T")

# How long a starting worker waits for Redis and the broker (e.g. both starting alongside
# it) before it gives up with one line naming the variable.
STARTUP_WAIT_S = 10.0
# How long a stopping worker keeps working on the batch in hand.
DRAIN_TIMEOUT_S = 20.0
RETRYABLE = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError)


class StoreUnavailable(RuntimeError):
    """Redis at REDIS_URL could not be reached at start."""


def fail_fast(message: str) -> None:
    """Stop a starting worker with one line on stderr and no traceback.

    Only used before any event is consumed, so there is nothing to commit or flush.
    """
    log.critical(message)
    sys.stderr.flush()
    # Straight to fd 2: the Faust worker redirects sys.stderr into its log.
    os.write(2, f"streamer: error: {message}\n".encode())
    os._exit(2)


class Runtime(Service):
    """Redis profile store, serving model and readiness of one worker."""

    def __post_init__(self) -> None:
        self._profiles: RedisProfileStore | None = None
        # What the agents use: every call retried while Redis is away.
        self.store = RetryingProfileStore(self)
        self.models = ModelHolder(ModelRegistry(settings.models.registry))
        self.store_healthy = False
        self._started_event = asyncio.Event()

    @property
    def profiles(self) -> RedisProfileStore:
        if self._profiles is None:
            raise RuntimeError("runtime not started")
        return self._profiles

    async def on_start(self) -> None:
        # The runtime starts before Faust's producer and consumer: check both addresses
        # here so a wrong one fails in seconds instead of retrying forever.
        try:
            await _check_broker(settings.kafka.broker)
        except ConnectionError as exc:
            fail_fast(str(exc))
        # Every topic the worker writes exists before the first send, so none is left to
        # broker auto-creation (often disabled) and the producer knows each one's partitions.
        try:
            await asyncio.to_thread(
                ensure_topics,
                settings.kafka.broker,
                settings.topics.prefix,
                settings.topics.partitions,
                settings.topics.replication_factor,
                librdkafka_config(settings.kafka),
            )
        except TopicsMissing as exc:
            fail_fast(str(exc))
        except KafkaException as exc:
            fail_fast(f"KAFKA_BROKER {settings.kafka.broker}: cannot declare topics: {exc}")
        client = aioredis.Redis.from_url(
            settings.redis.url,
            decode_responses=True,
            # call_store retries with backoff and tracks readiness; the client retrying
            # inside a call would only hide an outage from both.
            retry=Retry(NoBackoff(), 0),
            socket_connect_timeout=5,
            socket_timeout=10,
            **redis_client_options(settings.redis),
        )
        self._profiles = RedisProfileStore(client, settings.worker.dedup_window)
        try:
            await self._check_redis()
        except StoreUnavailable as exc:
            fail_fast(str(exc))
        await self.models.refresh()
        if self.models.current is None:
            log.warning(
                "No model in %s yet: scoring waits for `streamer train`", settings.models.registry
            )
        self._started_event.set()

    async def on_stop(self) -> None:
        if self._profiles is not None:
            await self._profiles.close()

    async def wait_started(self) -> None:
        await self._started_event.wait()

    @property
    def ready(self) -> bool:
        """Tables recovered, a model loaded and Redis reachable."""
        return tables_recovered() and self.models.current is not None and self.store_healthy

    async def call_store(self, operation: Callable[[], Awaitable[T]]) -> T:
        """Run a profile-store call, retrying with capped backoff while Redis is away.

        The batch in hand is not acknowledged until this returns, so offsets never move
        past events whose writes have not happened.
        """
        delay = 0.1
        while True:
            try:
                result = await operation()
            except RETRYABLE as exc:
                self.store_healthy = False
                metrics.READY.set(0)
                metrics.STORE_RETRIES.inc()
                log.warning("Redis unavailable (%s); retrying in %.1fs", exc, delay)
                await self.sleep(delay * (0.5 + random.random()))
                if self.should_stop:
                    raise
                delay = min(delay * 2, 5.0)
                continue
            if not self.store_healthy:
                self.store_healthy = True
            return result

    async def _check_redis(self) -> None:
        deadline = asyncio.get_running_loop().time() + STARTUP_WAIT_S
        while True:
            try:
                await self.profiles.client.ping()
                self.store_healthy = True
                return
            except redis.exceptions.AuthenticationError as exc:
                raise StoreUnavailable(
                    f"REDIS_URL {settings.redis.url_redacted}: authentication failed "
                    f"(REDIS_PASSWORD/REDIS_USERNAME): {exc}"
                ) from None
            except (*RETRYABLE, redis.exceptions.ResponseError) as exc:
                if asyncio.get_running_loop().time() > deadline or isinstance(
                    exc, redis.exceptions.ResponseError
                ):
                    raise StoreUnavailable(
                        f"REDIS_URL {settings.redis.url_redacted} is unreachable: {exc}"
                    ) from None
                await asyncio.sleep(0.5)

    async def finish_batch(self, work: Coroutine[Any, Any, None], batch: Sequence[EventT]) -> None:
        """Run one batch's work to the end, even when the worker is told to stop.

        SIGTERM cancels the agents; the batch in hand is then finished (up to
        DRAIN_TIMEOUT_S) so its offsets are acknowledged and committed before exit. A
        batch that cannot finish (Redis away) is held back: its messages are marked so
        that their offsets are never committed, and the next owner reads them again.
        """
        task = asyncio.ensure_future(work)
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            if not task.done():
                log.info("Stopping: finishing the batch in hand (%d events)", len(batch))
                await asyncio.wait({task}, timeout=DRAIN_TIMEOUT_S)
            if task.done() and not task.cancelled() and task.exception() is None:
                log.info("Stopping: drained the batch in hand (%d events)", len(batch))
            else:
                task.cancel()
                hold_back(batch)
                log.warning("Stopping: %d unfinished events left for redelivery", len(batch))
            raise

    @Service.task
    async def _poll_registry(self) -> None:
        await self.wait_started()
        while not self.should_stop:
            try:
                await self.models.refresh()
            except Exception:  # the registry folder may be mid-write or unreadable
                log.exception("Model registry check failed")
            metrics.READY.set(1 if self.ready else 0)
            await self.sleep(settings.worker.model_poll)

    @Service.task
    async def _watch_store(self) -> None:
        await self.wait_started()
        while not self.should_stop:
            await self.sleep(1.0)
            try:
                await self.profiles.client.ping()
                self.store_healthy = True
            except RETRYABLE:
                self.store_healthy = False


class RetryingProfileStore:
    """The worker's `ProfileStore`: Redis, each call run through `Runtime.call_store`."""

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime

    async def apply_events(self, updates: Sequence[EventUpdate]) -> list[dict[str, str] | None]:
        runtime = self._runtime
        return await runtime.call_store(lambda: runtime.profiles.apply_events(updates))

    async def write_scores(self, scores: Sequence[ScoreUpdate]) -> int:
        runtime = self._runtime
        return await runtime.call_store(lambda: runtime.profiles.write_scores(scores))

    async def get_profile(self, customer_id: str) -> dict[str, str] | None:
        runtime = self._runtime
        return await runtime.call_store(lambda: runtime.profiles.get_profile(customer_id))


def hold_back(batch: Sequence[EventT]) -> None:
    """Keep the batch's offsets from ever being committed by this worker.

    A message already marked acknowledged is skipped by the consumer's bookkeeping, so
    its offset never joins the committable run: the commit stops before it.
    """
    for event in batch:
        event.message.acked = True


async def run_batches(
    stream: StreamT[bytes],
    batches: AsyncIterator[Sequence[EventT]],
    process: Callable[[Sequence[EventT]], Coroutine[Any, Any, None]],
) -> None:
    """An agent's loop over `stream`'s micro-batches: each one processed to the end.

    On the way out the batch iterator is closed, which acknowledges the last finished
    batch at once (so the consumer's final commit includes it). Closing it also turns the
    stream's own acknowledgements back on while its background reader may still pull
    queued messages with no buffer to put them in: each would be acknowledged unprocessed
    and committed, and lost. Acknowledgements stay off instead: such messages are read
    again by the next owner of their partition.
    """
    if app.in_transaction:
        await _run_transactional_batches(stream, batches, process)
        return
    try:
        async for batch in batches:
            await runtime.finish_batch(process(batch), batch)
    finally:
        aclose = getattr(batches, "aclose", None)
        if aclose is not None:
            await aclose()
        # No await between the close above and this line: nothing can be acked unseen.
        cast(Any, stream).enable_acks = False


async def _run_transactional_batches(
    stream: StreamT[bytes],
    batches: AsyncIterator[Sequence[EventT]],
    process: Callable[[Sequence[EventT]], Coroutine[Any, Any, None]],
) -> None:
    """`run_batches` with exactly_once (see `streamer.worker.faust_patches.transactions`).

    Each batch holds the commit gate from before its first write until its events are
    acknowledged, here rather than by the batch iterator (which would do it only when asked
    for the next batch, possibly long after, with a commit in between). A batch read before
    a rebalance, or overtaken by one, is held back: the partitions' transactions were
    aborted and every event since the committed offsets is read again.
    """
    ack = stream.ack
    cast(Any, stream).ack = _acked_elsewhere
    try:
        async for batch in batches:
            await commit_gate.enter()
            try:
                if not fence.is_current(app, batch):
                    hold_back(batch)
                    continue
                try:
                    with fence.batch():
                        await runtime.finish_batch(process(batch), batch)
                except StaleBatch as exc:
                    log.info("Abandoned a batch of %d events: %s", len(batch), exc)
                    hold_back(batch)
                    continue
                except asyncio.CancelledError:
                    # Stopping: a drained batch is acknowledged (a held-back one is not).
                    for event in batch:
                        await ack(event)
                    raise
                for event in batch:
                    await ack(event)
            finally:
                commit_gate.leave()
    finally:
        aclose = getattr(batches, "aclose", None)
        if aclose is not None:
            await aclose()
        cast(Any, stream).enable_acks = False


async def _acked_elsewhere(event: EventT) -> bool:
    """The batch iterator's acknowledgement, done by `_run_transactional_batches`."""
    return False


async def _check_broker(broker: str) -> None:
    """Raise ConnectionError naming KAFKA_BROKER unless one bootstrap address answers."""
    addresses: list[tuple[str, int]] = []
    for hostport in bootstrap_servers(broker).split(","):
        host, _, port_text = hostport.rpartition(":")
        addresses.append((host.strip("[]"), int(port_text)))
    deadline = asyncio.get_running_loop().time() + STARTUP_WAIT_S
    last_error: Exception | None = None
    while asyncio.get_running_loop().time() < deadline:
        for host, port in addresses:
            try:
                _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 3.0)
            except (OSError, TimeoutError, socket.gaierror) as exc:
                last_error = exc
                continue
            writer.close()
            return
        await asyncio.sleep(0.5)
    raise ConnectionError(f"KAFKA_BROKER {broker} is unreachable: {last_error}")


def tables_recovered() -> bool:
    """Whether this worker has recovered its tables from their changelogs."""
    return cast(TableManager, app.tables).recovery.completed.is_set()


runtime = Runtime()
app.add_dependency(runtime)
