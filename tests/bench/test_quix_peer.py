"""The Quix Streams peer (`python -m benchmarks.quix_peer`) on a real broker and Redis:
every distinct event scored once, profiles counted like the textbook counts them, page
views through Quix's repartition topic."""

from __future__ import annotations

import os
import sys
from collections import Counter
from pathlib import Path

import orjson
import pytest
import redis

from models.features import COUNTER_FIELDS, is_cancel_page
from models.registry import ModelRegistry
from models.synthetic import EventGenerator, generate_customers
from streamer.devstack import EmbeddedStack
from streamer.devstack.processes import spawn, stop
from streamer.store.profiles import COUNTER_FIELD, load_profiles
from tests.support.services import produce_raw, read_topic
from topics.admin import ensure_topics
from topics.catalogue import CUSTOMER_EVENTS, PREDICTIONS
from topics.events import utc_now_ms
from topics.wire import parse_prediction

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
EVENTS = 200
REPLAYED = 10  # events sent twice: the second copy must be dropped


@pytest.fixture
def peer_env(
    stack: EmbeddedStack, trained_registry: Path, redis_db: int, topic_prefix: str, tmp_path: Path
) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, (str(ROOT), os.environ.get("PYTHONPATH")))),
        "KAFKA_BROKER": stack.kafka_broker,
        "REDIS_URL": f"redis://127.0.0.1:{stack.redis_port}/{redis_db}",
        "MODEL_REGISTRY": str(trained_registry),
        "TOPIC_PREFIX": topic_prefix,
        "STREAMER_PARTITIONS": "4",
        "BENCH_INPUT_TOPIC": CUSTOMER_EVENTS.full_name(topic_prefix),
        "BENCH_STATE_DIR": str(tmp_path / "state"),
        "PYTHONUNBUFFERED": "1",
    }


def test_quix_peer_scores_each_event_once_and_counts_profiles(
    stack: EmbeddedStack,
    trained_registry: Path,
    redis_db: int,
    topic_prefix: str,
    peer_env: dict[str, str],
    tmp_path: Path,
) -> None:
    customers = generate_customers(25, seed=3)
    load_profiles(peer_env["REDIS_URL"], customers)
    events = EventGenerator(customers, seed=5).batch(EVENTS, utc_now_ms())
    ensure_topics(stack.kafka_broker, topic_prefix, 4)
    messages = [(str(e["customer_id"]).encode(), orjson.dumps(e)) for e in events]
    produce_raw(stack.bootstrap_servers, peer_env["BENCH_INPUT_TOPIC"], messages)
    produce_raw(stack.bootstrap_servers, peer_env["BENCH_INPUT_TOPIC"], messages[:REPLAYED])

    log = tmp_path / "quix-peer.log"
    process = spawn([sys.executable, "-m", "benchmarks.quix_peer"], log, tmp_path, peer_env)
    try:
        records = read_topic(
            stack.bootstrap_servers,
            PREDICTIONS.full_name(topic_prefix),
            expect=EVENTS,
            timeout=240,
            settle=3,
        )
        pages = [str(e["page"]) for e in events if e["type"] == "page_view" and e.get("page")]
        repartitioned = read_topic(
            stack.bootstrap_servers,
            f"repartition__{topic_prefix}quix-peer--{peer_env['BENCH_INPUT_TOPIC']}--page",
            expect=len(pages),
            timeout=60,
            settle=1,
        )
    finally:
        stop(process, 30.0)
    assert process.returncode is not None

    predictions = [parse_prediction(record.value() or b"") for record in records]
    log_tail = log.read_text(errors="replace")[-2000:]
    assert Counter(p.event_id for p in predictions) == Counter(
        str(e["event_id"]) for e in events
    ), log_tail
    by_id = {str(e["event_id"]): e for e in events}
    version = ModelRegistry(trained_registry).serving_version()
    for prediction in predictions:
        event = by_id[prediction.event_id]
        assert prediction.customer_id == event["customer_id"]
        assert prediction.event_type == event["type"]
        assert prediction.event_ts == event["ts"]
        assert prediction.model_version == version
        assert 0.0 <= prediction.churn_score <= 1.0
        assert prediction.scored_at >= prediction.event_ts

    # Quix's page-view count read its input from the repartition topic, keyed by page.
    assert Counter(orjson.loads(m.value() or b"null") for m in repartitioned) == Counter(pages)

    client = redis.Redis(port=stack.redis_port, db=redis_db, decode_responses=True)
    expected: dict[str, Counter[str]] = {str(c["customer_id"]): Counter() for c in customers}
    for event in events:
        counts = expected[str(event["customer_id"])]
        counts[COUNTER_FIELD[str(event["type"])]] += 1
        if event["type"] == "page_view" and is_cancel_page(str(event.get("page") or "")):
            counts["cancel_page_views"] += 1
    for customer_id, counts in expected.items():
        profile = client.hgetall(f"profile:{customer_id}")
        assert {f: int(profile.get(f, 0)) for f in COUNTER_FIELDS} == {
            f: counts[f] for f in COUNTER_FIELDS
        }, customer_id
        if counts:
            assert profile["model_version"] == version
            assert 0.0 <= float(profile["churn_score"]) <= 1.0
