"""Session fixtures: one real broker and Redis on free ports, one trained model.

The integration and fault suites run on Apache Kafka wherever it can run here (Java 17+
and Maven or cached jars), else on Tansu; `STREAMER_TEST_BROKER=kafka|tansu` forces one,
and `KAFKA_BROKER` points them at a broker already running. A smoke subset (marker
`tansu_smoke`) also runs on Tansu, the embedded broker of machines without Java.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import pytest

from streamer.devstack import BROKER_NAMES, BrokerChoice, EmbeddedStack, choose_broker
from streamer.devstack.kafka import CACHE_VARIABLE

ROOT = Path(__file__).resolve().parent.parent
# One jar cache for every test, whatever folder a test runs a command in.
os.environ.setdefault(CACHE_VARIABLE, str(ROOT / ".streamer" / "kafka"))
TEST_BROKER = cast(BrokerChoice, os.environ.get("STREAMER_TEST_BROKER", "auto"))

_redis_dbs = itertools.count(1)
_prefixes = itertools.count(1)


def pytest_report_header(config: pytest.Config) -> list[str]:
    external = os.environ.get("KAFKA_BROKER")
    if external:
        main = f"the broker at KAFKA_BROKER={external}"
    else:
        kind, reason = choose_broker(TEST_BROKER)
        main = f"{BROKER_NAMES[kind]} ({reason})"
    return [
        f"broker: integration and fault suites on {main}",
        "broker: smoke subset (-m tansu_smoke) on Tansu",
    ]


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedStack]:
    """A real broker (Apache Kafka where it can run, else Tansu) and a real Redis for the
    whole session; with KAFKA_BROKER set, that broker instead."""
    external = os.environ.get("KAFKA_BROKER") or None
    with EmbeddedStack(
        workdir=tmp_path_factory.mktemp("stack"), external_broker=external, broker=TEST_BROKER
    ) as running:
        yield running


@pytest.fixture(scope="session")
def tansu_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedStack]:
    """Tansu and a Redis, for the smoke subset that keeps the embedded broker working."""
    with EmbeddedStack(workdir=tmp_path_factory.mktemp("tansu"), broker="tansu") as running:
        yield running


@pytest.fixture(params=["main", pytest.param("tansu", marks=pytest.mark.tansu_smoke)])
def each_broker(request: pytest.FixtureRequest) -> EmbeddedStack:
    """The session's stack, then the Tansu stack: for the smoke subset run on both."""
    name = "stack" if request.param == "main" else "tansu_stack"
    return cast(EmbeddedStack, request.getfixturevalue(name))


@pytest.fixture(scope="session")
def trained_registry(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A registry holding one small trained model version."""
    from models.registry import ModelRegistry
    from models.train import TrainingSource, train_and_register

    root = tmp_path_factory.mktemp("registry")
    train_and_register(
        ModelRegistry(root), TrainingSource(n_customers=3000, seed=11), author="tests"
    )
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
