"""Session fixtures: one embedded broker and Redis on free ports, one trained model."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from streamer.devstack import EmbeddedStack

_redis_dbs = itertools.count(1)
_prefixes = itertools.count(1)


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedStack]:
    """A real Kafka-protocol broker (Tansu) and a real Redis for the whole session.

    With KAFKA_BROKER set, that broker (a real Apache Kafka, say) is used instead of Tansu.
    """
    external = os.environ.get("KAFKA_BROKER") or None
    with EmbeddedStack(
        workdir=tmp_path_factory.mktemp("stack"), external_broker=external
    ) as running:
        yield running


@pytest.fixture(scope="session")
def trained_registry(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A registry holding one small trained model version."""
    from models.registry import ModelRegistry
    from models.train import train_and_register

    root = tmp_path_factory.mktemp("registry")
    train_and_register(ModelRegistry(root), n_customers=3000, seed=11, author="tests")
    return root


@pytest.fixture
def redis_db(stack: EmbeddedStack) -> int:
    """An empty Redis database (1..15) for this test alone."""
    import redis

    number = 1 + next(_redis_dbs) % 15
    redis.Redis(port=stack.redis_port, db=number).flushdb()
    return number


@pytest.fixture
def topic_prefix(request: pytest.FixtureRequest) -> str:
    """A topic prefix (and so a consumer group and changelogs) unique to this test."""
    return f"t{next(_prefixes)}-"
