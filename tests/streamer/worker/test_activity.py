"""The dashboard's activity views stay bounded and keep the riskiest customers."""

from __future__ import annotations

import random

from streamer.worker.activity import RECENT, Activity


def test_recent_predictions_are_newest_first_and_bounded() -> None:
    activity = Activity()
    for i in range(RECENT + 10):
        activity.record(f"c-{i}", "page_view", 0.5, "v1", 1000 + i)
    recent = activity.recent_predictions()
    assert len(recent) == RECENT
    assert recent[0] == {
        "customer_id": f"c-{RECENT + 9}",
        "event_type": "page_view",
        "churn_score": 0.5,
        "model_version": "v1",
        "scored_at": 1000 + RECENT + 9,
    }


def test_top_risk_survives_pruning_and_follows_the_latest_score() -> None:
    activity = Activity(max_tracked=100)
    rng = random.Random(3)
    scores = {f"c-{i}": rng.random() * 0.9 for i in range(1000)}
    for customer, score in scores.items():
        activity.record(customer, "order", score, "v1", 0)
    assert len(activity.latest_score) < 2 * activity.max_tracked
    expected = sorted(scores.values(), reverse=True)[:5]
    assert [row["churn_score"] for row in activity.top_risk(5)] == expected

    # A later, higher score for a customer replaces the old one at the top.
    activity.record("c-7", "complaint", 0.99, "v2", 1)
    assert activity.top_risk(1) == [{"customer_id": "c-7", "churn_score": 0.99}]
