"""The fault suites' fixture: a `Scenario` of the session's stack for one test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from streamer.devstack import EmbeddedStack
from tests.support.faults import Scenario


@pytest.fixture
def scenario(
    stack: EmbeddedStack, trained_registry: Path, redis_db: int, topic_prefix: str, tmp_path: Path
) -> Iterator[Scenario]:
    """This test's topic prefix, Redis database and folder; its workers stopped at the end."""
    with Scenario(stack, topic_prefix, redis_db, trained_registry, tmp_path) as running:
        yield running
