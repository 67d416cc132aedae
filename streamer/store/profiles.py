"""The profile store: Redis hashes `profile:{customer_id}`, changed in one round trip per batch.

Counters and the dedup mark change together inside one Lua script, so a replayed
`event_id` is never counted twice and a crash cannot leave a mark without its count (or
the other way round). Every counted event bumps the profile's update sequence
(`event_seq`); a score carries the sequence of the profile state it was computed from and
is written only if that is at least the stored score's (`scored_seq`), so a late batch
cannot overwrite a score of a newer state, while a late event (older timestamp, newer
state) is still scored.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any, Protocol

import redis.asyncio as aioredis

from models import features
from topics.events import EventType

PROFILE_PREFIX = "profile:"
DEDUP_PREFIX = "dedup:"

COUNTER_FIELD: dict[str, str] = {
    EventType.PAGE_VIEW: "page_views",
    EventType.COMPLAINT: "complaints",
    EventType.SUPPORT_CALL: "support_calls",
    EventType.ORDER: "orders",
}
# Written by the store beside the static attributes and counters (its Lua scripts
# spell them out too): when the newest counted event happened, how many events were
# counted (the update sequence), and the latest score with the sequence it was computed at.
LAST_EVENT_TS = "last_event_ts"
EVENT_SEQ = "event_seq"
SCORED_SEQ = "scored_seq"
INT_FIELDS = frozenset(
    {*features.INT_FIELDS, LAST_EVENT_TS, EVENT_SEQ, "scored_at", "scored_event_ts", SCORED_SEQ}
)
FLOAT_FIELDS = frozenset({*features.FLOAT_FIELDS, "churn_score"})

# The Lua scripts, next to this module: counters and dedup marks (see apply_events.lua for
# how a redelivery is told from a duplicate), and scores guarded by update sequence.
APPLY_EVENTS_SCRIPT = resources.files("streamer.store").joinpath("apply_events.lua").read_text()
WRITE_SCORES_SCRIPT = resources.files("streamer.store").joinpath("write_scores.lua").read_text()


@dataclass(frozen=True, slots=True)
class EventUpdate:
    """What one valid event changes in its customer's profile."""

    event_id: str
    customer_id: str
    counter: str
    cancel_page: bool
    ts: int
    # Where the event was read (topic/partition/offset): tells a redelivery from a duplicate.
    source: str = ""


@dataclass(frozen=True, slots=True)
class ScoreUpdate:
    """A churn score to store on a profile."""

    customer_id: str
    churn_score: float
    model_version: str
    scored_at: int
    event_ts: int  # informative: scored_event_ts
    # The `event_seq` of the profile state scored: guards the write.
    seq: int


class ProfileStore(Protocol):
    """What the agents and the web views need from the profile store."""

    async def apply_events(self, updates: Sequence[EventUpdate]) -> list[dict[str, str] | None]:
        """Count first-seen events; per event the updated profile, or None if a duplicate."""
        ...

    async def write_scores(self, scores: Sequence[ScoreUpdate]) -> int:
        """Store scores of a profile state not older than the stored score's (by update
        sequence); returns how many were written."""
        ...

    async def get_profile(self, customer_id: str) -> dict[str, str] | None:
        """The raw profile hash, or None if absent."""
        ...


class RedisProfileStore:
    """`ProfileStore` on Redis, one Lua call per batch per stage."""

    def __init__(self, client: aioredis.Redis, dedup_window_s: int) -> None:
        self._client = client
        self._dedup_window_s = dedup_window_s
        self._apply = client.register_script(APPLY_EVENTS_SCRIPT)
        self._scores = client.register_script(WRITE_SCORES_SCRIPT)

    @classmethod
    def from_url(cls, url: str, dedup_window_s: int) -> RedisProfileStore:
        client = aioredis.Redis.from_url(url, decode_responses=True)
        return cls(client, dedup_window_s)

    @property
    def client(self) -> aioredis.Redis:
        return self._client

    async def apply_events(self, updates: Sequence[EventUpdate]) -> list[dict[str, str] | None]:
        if not updates:
            return []
        args: list[str | int] = [self._dedup_window_s]
        for update in updates:
            args += [
                update.event_id,
                update.customer_id,
                update.counter,
                "1" if update.cancel_page else "0",
                update.ts,
                update.source,
            ]
        replies = await self._apply(args=args)
        return [_pairs_to_dict(reply) if reply else None for reply in replies]

    async def write_scores(self, scores: Sequence[ScoreUpdate]) -> int:
        if not scores:
            return 0
        args: list[str | int | float] = []
        for score in scores:
            args += [
                score.customer_id,
                repr(score.churn_score),
                score.model_version,
                score.scored_at,
                score.event_ts,
                score.seq,
            ]
        return int(await self._scores(args=args))

    async def get_profile(self, customer_id: str) -> dict[str, str] | None:
        profile = await self._client.hgetall(PROFILE_PREFIX + customer_id)
        return {str(k): str(v) for k, v in profile.items()} or None

    async def load_profiles(self, rows: Iterable[Mapping[str, object]], chunk: int = 1000) -> int:
        """Write static attributes (everything but customer_id) of many profiles."""
        loaded = 0
        pipe = self._client.pipeline(transaction=False)
        for row in rows:
            fields: dict[str | bytes | bytearray | memoryview | int | float, str] = {
                k: str(v) for k, v in row.items() if k != "customer_id" and v is not None
            }
            pipe.hset(PROFILE_PREFIX + str(row["customer_id"]), mapping=fields)
            loaded += 1
            if loaded % chunk == 0:
                await pipe.execute()
        await pipe.execute()
        return loaded

    async def close(self) -> None:
        await self._client.aclose()


def load_profiles(
    redis_url: str,
    rows: Iterable[Mapping[str, object]],
    *,
    client_options: Mapping[str, Any] | None = None,
    chunk: int = 1000,
) -> int:
    """Write customers' static attributes into the profile store at `redis_url`; returns
    how many. What `streamer profiles load` does with a file, the demo and the
    benchmark with generated customers."""
    return asyncio.run(_load_profiles(redis_url, rows, client_options or {}, chunk))


async def _load_profiles(
    redis_url: str,
    rows: Iterable[Mapping[str, object]],
    client_options: Mapping[str, Any],
    chunk: int,
) -> int:
    client = aioredis.Redis.from_url(
        redis_url, decode_responses=True, socket_connect_timeout=5, **client_options
    )
    # The dedup window matters only to counting events, which loading never does.
    store = RedisProfileStore(client, dedup_window_s=60)
    try:
        return await store.load_profiles(rows, chunk=chunk)
    finally:
        await store.close()


def profile_seq(profile: Mapping[str, object]) -> int:
    """The update sequence of a profile state (0 if absent or unreadable: data written
    before sequences existed)."""
    try:
        return max(0, int(profile.get(EVENT_SEQ) or 0))  # type: ignore[call-overload]
    except (TypeError, ValueError, OverflowError):
        return 0


def _pairs_to_dict(flat: Sequence[str]) -> dict[str, str]:
    return dict(zip(flat[::2], flat[1::2], strict=True))


def typed_profile(raw: Mapping[str, str]) -> dict[str, str | int | float]:
    """A stored profile with its numeric fields as numbers (for JSON answers)."""
    typed: dict[str, str | int | float] = {}
    for key, value in raw.items():
        try:
            if key in INT_FIELDS:
                typed[key] = int(float(value))
                continue
            if key in FLOAT_FIELDS:
                typed[key] = float(value)
                continue
        except ValueError:
            pass
        typed[key] = value
    return typed
