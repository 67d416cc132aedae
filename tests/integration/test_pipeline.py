"""End to end on a real broker and Redis: exact counts, scores, predictions, DLQ.

Run on the session's broker and, as the Tansu smoke test, on the embedded Tansu.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import orjson
import pytest
import redis

from streamer.devstack import EmbeddedStack
from tests.support.services import eventually, http, produce_raw, read_topic, started_worker
from topics.events import DeadLetter, EnrichedEvent, PredictionRecord

pytestmark = pytest.mark.integration

TS = 1795341600000  # 2026-11-22T10:00:00Z
PAGE_WINDOW_S = 3600


def event(
    event_id: str, customer: str, kind: str = "page_view", **extra: object
) -> dict[str, object]:
    return {"event_id": event_id, "type": kind, "customer_id": customer, "ts": TS, **extra}


def encode(value: dict[str, object]) -> tuple[bytes, bytes]:
    return str(value["customer_id"]).encode(), orjson.dumps(value)


def test_pipeline_counts_scores_and_dead_letters_exactly(
    each_broker: EmbeddedStack,
    trained_registry: Path,
    redis_db: int,
    topic_prefix: str,
    tmp_path: Path,
) -> None:
    stack = each_broker
    store = redis.Redis(port=stack.redis_port, db=redis_db, decode_responses=True)
    store.hset(
        "profile:alice",
        mapping={
            "plan": "basic",
            "contract": "monthly",
            "tenure_months": "3",
            "monthly_spend": "20.5",
            "country": "DE",
        },
    )
    valid = [
        event("e1", "alice", page="/pricing"),
        event("e2", "alice", page="/pricing"),
        event("e3", "alice", page="/cancel"),
        event("e4", "alice", "complaint"),
        event("e5", "bob", page="/pricing"),
        event("e6", "bob", "order", amount=19.99),
        event("e7", "bob", "support_call"),
        event("e8", "carol", page="/docs", ts="2026-11-22T10:00:05Z"),
    ]
    duplicates = [valid[0], valid[4], valid[3]]  # replays of e1, e5, e4
    malformed: list[tuple[bytes | None, bytes]] = [
        (b"dave", b"{not json"),
        (b"dave", orjson.dumps(event("m2", "dave", "refund"))),
        (b"dave", orjson.dumps({"event_id": "m3", "type": "page_view", "customer_id": "dave"})),
        (b"dave", orjson.dumps(event("m4", "dave", page=42))),
        (b"\xff\xfe", orjson.dumps(event("m5", "dave", "complaint"))),
    ]
    messages = [encode(v) for v in valid] + [encode(d) for d in duplicates] + malformed

    worker = started_worker(
        stack,
        tmp_path,
        prefix=topic_prefix,
        redis_db=redis_db,
        registry=trained_registry,
        # The windowed count's "current window" is the worker's wall-clock window: an hour
        # makes it rare for the test to cross a boundary, and the check below allows for it.
        STREAMER_PAGE_WINDOW=str(PAGE_WINDOW_S),
        STREAMER_PAGE_WINDOW_EXPIRES=str(2 * PAGE_WINDOW_S),
    )
    try:
        first_sent = time.time()
        produce_raw(stack.bootstrap_servers, f"{topic_prefix}customer-events", messages)

        def profiles_counted() -> dict[str, dict[str, str]]:
            profiles = {c: store.hgetall(f"profile:{c}") for c in ("alice", "bob", "carol")}
            assert all("churn_score" in p for p in profiles.values()), profiles
            assert profiles["alice"]["page_views"] == "3", profiles
            return profiles

        profiles = eventually(profiles_counted)
        predictions = read_topic(
            stack.bootstrap_servers, f"{topic_prefix}churn-predictions", expect=len(valid)
        )
        enriched = read_topic(
            stack.bootstrap_servers, f"{topic_prefix}customer-events-enriched", expect=len(valid)
        )
        joined = [EnrichedEvent.model_validate_json(m.value()) for m in enriched]
        assert sorted(e.event["event_id"] for e in joined) == sorted(
            str(v["event_id"]) for v in valid
        )
        dead = read_topic(
            stack.bootstrap_servers, f"{topic_prefix}customer-events-dlq", expect=len(malformed)
        )

        # Profile counters: each valid event counted once, duplicates ignored.
        alice, bob, carol = profiles["alice"], profiles["bob"], profiles["carol"]
        assert (alice["page_views"], alice["complaints"], alice["cancel_page_views"]) == (
            "3",
            "1",
            "1",
        )
        assert "orders" not in alice and "support_calls" not in alice
        assert (bob["page_views"], bob["orders"], bob["support_calls"]) == ("1", "1", "1")
        assert carol["page_views"] == "1"
        assert carol["last_event_ts"] == str(TS + 5000)
        assert alice["plan"] == "basic"  # static attributes untouched
        for profile in profiles.values():
            assert 0.0 <= float(profile["churn_score"]) <= 1.0
            assert profile["model_version"] == "v1"
            assert int(profile["scored_at"]) >= TS

        # One prediction record per valid event, none for duplicates.
        records = [orjson.loads(m.value()) for m in predictions]
        for record in records:  # the published shape is the contract's
            PredictionRecord.model_validate(record)
        assert sorted(r["event_id"] for r in records) == sorted(str(v["event_id"]) for v in valid)
        first = records[0]
        assert set(first["features"]) >= {"tenure_months", "complaints", "cancel_page_views"}
        assert (first["model_version"] == "v1" and first["event_ts"] == TS) or first[
            "event_ts"
        ] == TS + 5000

        # Every malformed event in the DLQ, with reason, stage and source position.
        letters = [orjson.loads(m.value()) for m in dead]
        assert len(letters) == len(malformed)
        for letter in letters:
            DeadLetter.model_validate(letter)
        reasons = " | ".join(sorted(letter["reason"] for letter in letters))
        for expected in (
            "invalid JSON",
            "unknown event type 'refund'",
            "missing field 'ts'",
            "field 'page'",
            "message key is not valid UTF-8",
        ):
            assert expected in reasons
        for letter in letters:
            assert letter["stage"] == "validation"
            assert letter["source"]["topic"] == f"{topic_prefix}customer-events"
            assert letter["source"]["offset"] >= 0
            assert (
                dict(next(m for m in dead if orjson.loads(m.value()) == letter).headers())[
                    "dlq.stage"
                ]
                == b"validation"
            )

        # Page counts over HTTP, exact.
        def page_counts() -> dict[str, int]:
            status, body = http("GET", f"{worker.base_url}/api/page-views")
            assert status == 200
            counts = {item["page"]: item["total"] for item in body["pages"]}
            assert counts == {"/pricing": 3, "/cancel": 1, "/docs": 1}, body
            windows = {item["page"]: item["current_window"] for item in body["pages"]}
            if int(first_sent // PAGE_WINDOW_S) == int(time.time() // PAGE_WINDOW_S):
                # No window boundary since the first send: the current window holds them all.
                assert windows == counts, body
            else:
                assert all(0 <= windows[page] <= counts[page] for page in counts), body
            return counts

        eventually(page_counts, timeout=30)
        status, body = http("GET", f"{worker.base_url}/api/customers/alice/page-views")
        assert (status, body["total"]) == (200, 3)
        status, body = http("GET", f"{worker.base_url}/api/customers/nobody/page-views")
        assert (status, body["total"]) == (200, 0)

        status, body = http("GET", f"{worker.base_url}/api/profiles/alice")
        assert status == 200
        assert body["page_views"] == 3 and body["plan"] == "basic"
        assert isinstance(body["churn_score"], float)
        status, body = http("GET", f"{worker.base_url}/api/profiles/nobody")
        assert status == 404 and "error" in body

        status, text = http("GET", f"{worker.base_url}/metrics")
        assert status == 200
        assert 'streamer_dead_letters_total{stage="validation"} 5.0' in text
        assert 'streamer_events_total{outcome="duplicate",stage="enrichment"} 3.0' in text
    finally:
        worker.stop()
    assert Counter(r["customer_id"] for r in records) == Counter({"alice": 4, "bob": 3, "carol": 1})
