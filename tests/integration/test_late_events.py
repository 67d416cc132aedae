"""Late events on a real broker and Redis: the stored score follows the profile, not the
event clock. Complaints stamped before the page view already scored still make a fuller
profile, and its score must replace the stored one."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
import redis

from models.features import feature_row
from models.registry import ModelRegistry
from streamer.devstack import EmbeddedStack
from tests.support.services import eventually, http, produce_raw, started_worker

pytestmark = pytest.mark.integration

TS = 1795341600000  # 2026-11-22T10:00:00Z
LATE_COMPLAINTS = 5


def message(event_id: str, kind: str, ts: int, **extra: object) -> tuple[bytes, bytes]:
    value = {"event_id": event_id, "type": kind, "customer_id": "alice", "ts": ts, **extra}
    return b"alice", orjson.dumps(value)


def test_complaints_older_than_the_scored_page_view_are_scored(
    stack: EmbeddedStack,
    trained_registry: Path,
    redis_db: int,
    topic_prefix: str,
    tmp_path: Path,
) -> None:
    store = redis.Redis(port=stack.redis_port, db=redis_db, decode_responses=True)
    store.hset(
        "profile:alice",
        mapping={"plan": "basic", "contract": "monthly", "tenure_months": 3, "monthly_spend": 20},
    )
    worker = started_worker(
        stack, tmp_path, prefix=topic_prefix, redis_db=redis_db, registry=trained_registry
    )
    topic = f"{topic_prefix}customer-events"
    try:
        produce_raw(stack.bootstrap_servers, topic, [message("pv", "page_view", TS, page="/")])

        def page_view_scored() -> dict[str, str]:
            profile = store.hgetall("profile:alice")
            assert profile.get("scored_seq") == "1", profile
            return profile

        first = eventually(page_view_scored)
        assert first["event_seq"] == "1" and first["scored_event_ts"] == str(TS)

        late = [message(f"c{i}", "complaint", TS - 60_000) for i in range(LATE_COMPLAINTS)]
        produce_raw(stack.bootstrap_servers, topic, late)

        def complaints_scored() -> dict[str, str]:
            profile = store.hgetall("profile:alice")
            assert profile.get("complaints") == str(LATE_COMPLAINTS), profile
            assert profile.get("scored_seq") == str(1 + LATE_COMPLAINTS), profile
            return profile

        profile = eventually(complaints_scored)
        status, shown = http("GET", f"{worker.base_url}/api/profiles/alice")
        assert status == 200, shown
        seqs = (shown["event_seq"], shown["scored_seq"])
        assert seqs == (1 + LATE_COMPLAINTS,) * 2 and {type(n) for n in seqs} == {int}
    finally:
        worker.stop()

    model = ModelRegistry(trained_registry).load("v1")
    expected = float(model.score([feature_row(profile)])[0])
    # The complaints change the model's answer, so the old score would not pass below.
    assert expected != pytest.approx(float(first["churn_score"]), abs=1e-6)
    assert profile["model_version"] == "v1"
    assert float(profile["churn_score"]) == pytest.approx(expected, abs=1e-12)
    assert profile["event_seq"] == profile["scored_seq"]
    assert profile["last_event_ts"] == str(TS)  # the event clock did not move back
    assert profile["scored_event_ts"] == str(TS - 60_000)  # informative: the event scored
