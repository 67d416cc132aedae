"""The worker's runtime resources, opened when the worker starts and closed when it stops.

`runtime` is a `mode.Service` attached to the Faust app: Redis and the model are opened in
its start hook, never at import. Agents call `await runtime.wait_started()` first.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar, cast

import redis.exceptions
from faust.tables.manager import TableManager
from mode import Service
from threadpoolctl import threadpool_limits

from models.registry import ModelRegistry
from streamer import metrics
from streamer.app import app, settings
from streamer.profiles import RedisProfileStore
from streamer.scoring import ModelHolder

log = logging.getLogger(__name__)
T = TypeVar("T")

STARTUP_REDIS_WAIT_S = 15.0
RETRYABLE = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError)


class StoreUnavailable(RuntimeError):
    """Redis at REDIS_URL could not be reached at start."""


class Runtime(Service):
    """Redis profile store, serving model and readiness of one worker."""

    def __post_init__(self) -> None:
        self._profiles: RedisProfileStore | None = None
        self.models = ModelHolder(ModelRegistry(settings.model_registry))
        self.store_healthy = False
        self._started_event = asyncio.Event()
        # BLAS and OpenMP threads cost more than they give on micro-batches, and a
        # worker shares two cores with the broker.
        self._thread_limits = threadpool_limits(limits=1)

    @property
    def profiles(self) -> RedisProfileStore:
        if self._profiles is None:
            raise RuntimeError("runtime not started")
        return self._profiles

    async def on_start(self) -> None:
        self._profiles = RedisProfileStore.from_url(settings.redis_url, settings.dedup_window_s)
        await self._check_redis()
        await self.models.refresh()
        if self.models.current is None:
            log.warning(
                "No model in %s yet: scoring waits for `streamer train`", settings.model_registry
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
        deadline = asyncio.get_running_loop().time() + STARTUP_REDIS_WAIT_S
        while True:
            try:
                await self.profiles.client.ping()
                self.store_healthy = True
                return
            except RETRYABLE as exc:
                if asyncio.get_running_loop().time() > deadline:
                    raise StoreUnavailable(
                        f"REDIS_URL {settings.redis_url} is unreachable: {exc}"
                    ) from None
                await asyncio.sleep(0.5)

    @Service.task
    async def _poll_registry(self) -> None:
        await self.wait_started()
        while not self.should_stop:
            try:
                await self.models.refresh()
            except Exception:  # the registry folder may be mid-write or unreadable
                log.exception("Model registry check failed")
            metrics.READY.set(1 if self.ready else 0)
            await self.sleep(settings.model_poll_s)

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


def tables_recovered() -> bool:
    """Whether this worker has recovered its tables from their changelogs."""
    return cast(TableManager, app.tables).recovery.completed.is_set()


runtime = Runtime()
app.add_dependency(runtime)
