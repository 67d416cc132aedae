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
    """Bounded in-memory views of what this worker scored lately."""

    recent: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=RECENT))
    latest_score: dict[str, float] = field(default_factory=dict)
    max_tracked: int = 10_000

    def record(
        self, customer_id: str, event_type: str, score: float, version: str, scored_at: int
    ) -> None:
        self.recent.appendleft(
            {
                "customer_id": customer_id,
                "event_type": event_type,
                "churn_score": score,
                "model_version": version,
                "scored_at": scored_at,
            }
        )
        if customer_id not in self.latest_score and len(self.latest_score) >= self.max_tracked:
            # Bounded memory: forget the least risky customer we track.
            lowest = min(self.latest_score, key=self.latest_score.__getitem__)
            del self.latest_score[lowest]
        self.latest_score[customer_id] = score

    def top_risk(self, n: int = TOP) -> list[dict[str, Any]]:
        best = heapq.nlargest(n, self.latest_score.items(), key=lambda item: item[1])
        return [{"customer_id": cid, "churn_score": score} for cid, score in best]


activity = Activity()
