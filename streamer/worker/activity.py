"""Recent activity of this worker, for the dashboard: newest predictions and riskiest customers."""

from __future__ import annotations

import heapq
from collections import deque
from dataclasses import dataclass, field
from typing import Any

RECENT = 50
TOP = 20


@dataclass
class Activity:
    """Bounded in-memory views of what this worker scored lately.

    `record` runs once per scored event, so it must cost O(1): recent predictions are kept
    as tuples (dicts are built on read), and the score map is pruned in bulk to the
    `max_tracked` riskiest customers only when it doubles, an amortised O(log n) per event.
    """

    recent: deque[tuple[str, str, float, str, int]] = field(
        default_factory=lambda: deque(maxlen=RECENT)
    )
    latest_score: dict[str, float] = field(default_factory=dict)
    max_tracked: int = 10_000

    def record(
        self, customer_id: str, event_type: str, score: float, version: str, scored_at: int
    ) -> None:
        self.recent.appendleft((customer_id, event_type, score, version, scored_at))
        self.latest_score[customer_id] = score
        if len(self.latest_score) >= 2 * self.max_tracked:
            riskiest = heapq.nlargest(
                self.max_tracked, self.latest_score.items(), key=lambda item: item[1]
            )
            self.latest_score = dict(riskiest)

    def recent_predictions(self) -> list[dict[str, Any]]:
        return [
            {
                "customer_id": customer_id,
                "event_type": event_type,
                "churn_score": score,
                "model_version": version,
                "scored_at": scored_at,
            }
            for customer_id, event_type, score, version, scored_at in self.recent
        ]

    def top_risk(self, n: int = TOP) -> list[dict[str, Any]]:
        best = heapq.nlargest(n, self.latest_score.items(), key=lambda item: item[1])
        return [{"customer_id": cid, "churn_score": score} for cid, score in best]


activity = Activity()
