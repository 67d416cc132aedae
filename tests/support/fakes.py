"""Small fakes of what the stages are given: events as a stream hands them out, an
in-memory `ProfileStore`, and recorders for published records and dead letters."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from streamer.store.profiles import EventUpdate, ScoreUpdate
from topics.events import Stage

_offsets = itertools.count()


@dataclass
class FakeMessage:
    key: bytes | None
    topic: str = "customer-events"
    partition: int = 0
    offset: int = field(default_factory=lambda: next(_offsets))
    timestamp: float = 0.0  # seconds, as Faust gives it


@dataclass(eq=False)
class FakeEvent:
    """A Faust-like event: its value and the message it was read from."""

    value: Any
    message: FakeMessage


def received(value: Any, key: bytes | None, partition: int = 0) -> FakeEvent:
    return FakeEvent(value, FakeMessage(key, partition=partition))


class MemoryProfileStore:
    """`ProfileStore` in memory, with the Redis store's rules: an event is counted once per
        event_id; the same message seen again is answered with its profile, another message
        with the same event_id is a duplicate (None); every counted event bumps `event_seq`;
    a score of an older profile state (`scored_seq`) never replaces a newer one."""

    def __init__(self) -> None:
        self.profiles: dict[str, dict[str, str]] = {}
        self.marks: dict[str, str] = {}
        self.batches: list[list[EventUpdate]] = []
        self.score_writes: list[list[ScoreUpdate]] = []

    async def apply_events(self, updates: Sequence[EventUpdate]) -> list[dict[str, str] | None]:
        self.batches.append(list(updates))
        out: list[dict[str, str] | None] = []
        for update in updates:
            profile = self.profiles.setdefault(update.customer_id, {})
            mark = update.source or update.customer_id
            if update.event_id not in self.marks:
                self.marks[update.event_id] = mark
                profile[update.counter] = str(int(profile.get(update.counter, "0")) + 1)
                profile["event_seq"] = str(int(profile.get("event_seq", "0")) + 1)
                if update.cancel_page:
                    views = int(profile.get("cancel_page_views", "0")) + 1
                    profile["cancel_page_views"] = str(views)
                if update.ts > int(profile.get("last_event_ts", "0")):
                    profile["last_event_ts"] = str(update.ts)
                out.append(dict(profile))
            elif update.source and self.marks[update.event_id] == update.source:
                out.append(dict(profile))
            else:
                out.append(None)
        return out

    async def write_scores(self, scores: Sequence[ScoreUpdate]) -> int:
        self.score_writes.append(list(scores))
        written = 0
        for score in scores:
            profile = self.profiles.setdefault(score.customer_id, {})
            if score.seq >= int(profile.get("scored_seq", "0")):
                profile.update(
                    churn_score=repr(score.churn_score),
                    model_version=score.model_version,
                    scored_at=str(score.scored_at),
                    scored_event_ts=str(score.event_ts),
                    scored_seq=str(score.seq),
                )
                written += 1
        return written

    async def get_profile(self, customer_id: str) -> dict[str, str] | None:
        return self.profiles.get(customer_id)


@dataclass
class Sinks:
    """Records what a stage published and dead-lettered."""

    outputs: list[tuple[FakeEvent, bytes | None, bytes]] = field(default_factory=list)
    letters: list[tuple[FakeEvent, str, str, Stage]] = field(default_factory=list)

    async def publish(self, outputs: Sequence[tuple[FakeEvent, bytes | None, bytes]]) -> None:
        self.outputs.extend(outputs)

    async def dead_letter(
        self, event: FakeEvent, reason: str, error_type: str, stage: Stage
    ) -> None:
        self.letters.append((event, reason, error_type, stage))
