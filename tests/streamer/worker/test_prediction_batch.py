"""Scoring of a micro-batch with stand-in models: the newest score per customer is stored,
one record per event and model is published, each with the role of the model behind it."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, cast

import numpy as np

from models.features import FEATURE_NAMES
from models.registry import LoadedModel
from streamer.serving.models import ServingModels, routes_to_challenger
from streamer.worker.activity import Activity
from streamer.worker.stages.prediction import ChallengerPolicy, predict
from tests.support.fakes import FakeEvent, MemoryProfileStore, Sinks, received
from topics.events import PredictionRecord, Stage
from topics.wire import enriched_event, parse_prediction

TS = 1_700_000_000_000
COMPLAINTS = FEATURE_NAMES.index("complaints")


class FixedModel:
    """Scores a row as its complaints / 10 plus an offset: each model tells itself apart."""

    def __init__(self, version: str, offset: float) -> None:
        self.version, self.offset = version, offset
        self.calls = 0

    def score(self, rows: Any) -> np.ndarray:
        self.calls += 1
        return np.asarray(rows)[:, COMPLAINTS] / 10 + self.offset


CHAMPION, CHALLENGER = FixedModel("v1", 0.0), FixedModel("v2", 0.5)


def serving(challenger: FixedModel | None = None) -> ServingModels:
    return ServingModels(cast(LoadedModel, CHAMPION), cast(LoadedModel | None, challenger))


def enriched(
    event_id: str, customer: str, ts: int, complaints: int, seq: int | None = None
) -> FakeEvent:
    event = {"event_id": event_id, "type": "complaint", "customer_id": customer, "ts": ts}
    profile = {"complaints": str(complaints), "plan": "basic"}
    if seq is not None:
        profile["event_seq"] = str(seq)
    value = enriched_event(event, profile, ts)
    return received(value, customer.encode())


def run(
    batch: Sequence[FakeEvent], models: ServingModels, policy: ChallengerPolicy
) -> tuple[MemoryProfileStore, Sinks, Activity]:
    store, sinks, activity = MemoryProfileStore(), Sinks(), Activity()
    asyncio.run(
        predict(
            batch,
            models,
            policy=policy,
            store=store,
            publish=sinks.publish,
            dead_letter=sinks.dead_letter,
            cache=None,
            activity=activity,
            now=lambda: TS + 5,
        )
    )
    return store, sinks, activity


def test_the_newest_score_per_customer_is_stored_and_every_event_recorded() -> None:
    batch = [
        enriched("e1", "alice", TS + 1, complaints=1),
        enriched("e2", "bob", TS + 1, complaints=3),
        enriched("e3", "alice", TS + 2, complaints=2),
    ]
    store, sinks, activity = run(batch, serving(), ChallengerPolicy())

    (written,) = store.score_writes  # one store call per batch
    assert {(s.customer_id, s.churn_score, s.event_ts) for s in written} == {
        ("alice", 0.2, TS + 2),
        ("bob", 0.3, TS + 1),
    }
    records = [parse_prediction(value) for _, _, value in sinks.outputs]
    assert [(o[0], o[1]) for o in sinks.outputs] == [(e, e.message.key) for e in batch]
    assert [(r.event_id, r.churn_score, r.model_role, r.model_version) for r in records] == [
        ("e1", 0.1, "champion", "v1"),
        ("e2", 0.3, "champion", "v1"),
        ("e3", 0.2, "champion", "v1"),
    ]
    assert records[0].features["complaints"] == 1.0 and records[0].scored_at == TS + 5
    for _, _, value in sinks.outputs:
        PredictionRecord.model_validate_json(value)
    assert activity.latest_score == {"alice": 0.2, "bob": 0.3}


def test_the_score_of_the_newest_profile_state_is_stored_whatever_the_event_times() -> None:
    batch = [
        enriched("e1", "alice", TS, complaints=1, seq=1),
        # Late events: older timestamps, but a fuller profile.
        enriched("e2", "alice", TS - 60_000, complaints=2, seq=2),
        enriched("e3", "alice", TS - 60_000, complaints=3, seq=3),
    ]
    store, _, _ = run(batch, serving(), ChallengerPolicy())

    (written,) = store.score_writes
    assert [(s.churn_score, s.seq, s.event_ts) for s in written] == [(0.3, 3, TS - 60_000)]
    assert store.profiles["alice"]["scored_seq"] == "3"


def test_of_a_customers_events_the_highest_sequence_is_written_not_the_last() -> None:
    batch = [
        enriched("e2", "alice", TS, complaints=2, seq=2),
        enriched("e1", "alice", TS + 1, complaints=1, seq=1),  # an older state, later in batch
        enriched("e3", "bob", TS, complaints=4),  # no sequence (older data): 0
    ]
    store, _, _ = run(batch, serving(), ChallengerPolicy())

    (written,) = store.score_writes
    assert {(s.customer_id, s.churn_score, s.seq) for s in written} == {
        ("alice", 0.2, 2),
        ("bob", 0.4, 0),
    }


def test_split_mode_records_the_model_that_served_each_customer() -> None:
    customers = [f"c-{i}" for i in range(40)]
    batch = [enriched(f"e-{c}", c, TS, complaints=1) for c in customers]
    store, sinks, _ = run(batch, serving(CHALLENGER), ChallengerPolicy("split", 0.5))

    records = [parse_prediction(value) for _, _, value in sinks.outputs]
    assert [r.customer_id for r in records] == customers  # one each, in batch order
    for record in records:
        challenger = routes_to_challenger(record.customer_id, 0.5)
        assert (record.model_role, record.model_version) == (
            ("challenger", "v2") if challenger else ("champion", "v1")
        )
        assert store.profiles[record.customer_id]["model_version"] == record.model_version
    assert {r.model_role for r in records} == {"champion", "challenger"}


def test_shadow_mode_adds_a_challenger_record_and_stores_only_the_champion() -> None:
    batch = [enriched("e1", "alice", TS, complaints=1), enriched("e2", "bob", TS, complaints=2)]
    store, sinks, _ = run(batch, serving(CHALLENGER), ChallengerPolicy("shadow", 0.9))

    records = [parse_prediction(value) for _, _, value in sinks.outputs]
    assert [(r.event_id, r.model_role, r.churn_score) for r in records] == [
        ("e1", "champion", 0.1),
        ("e1", "challenger", 0.6),
        ("e2", "champion", 0.2),
        ("e2", "challenger", 0.7),
    ]
    assert {p["model_version"] for p in store.profiles.values()} == {"v1"}


def test_unreadable_enriched_events_are_dead_lettered_and_the_rest_scored() -> None:
    garbage = received(b'{"event": {}}', b"alice")
    good = enriched("e1", "alice", TS, complaints=0)
    store, sinks, _ = run([garbage, good], serving(), ChallengerPolicy())

    assert [(letter[0], letter[2], letter[3]) for letter in sinks.letters] == [
        (garbage, "KeyError", Stage.PREDICTION)
    ]
    assert [o[0] for o in sinks.outputs] == [good]
    assert store.profiles["alice"]["churn_score"] == "0.0"


def test_a_batch_of_nothing_readable_calls_no_model_and_writes_nothing() -> None:
    calls = CHAMPION.calls
    store, sinks, _ = run([received(b"[]", b"x")], serving(), ChallengerPolicy())
    assert CHAMPION.calls == calls and store.score_writes == [] and sinks.outputs == []
    assert len(sinks.letters) == 1
