"""The profile store's Lua scripts, run as they are shipped against a real Redis."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import redis

from streamer.store.profiles import APPLY_EVENTS_SCRIPT, WRITE_SCORES_SCRIPT

ROOT = Path(__file__).resolve().parents[3]
TTL = 3600
TS = 1_700_000_000_000


def apply(client: redis.Redis, *events: tuple[str, str, str, bool, int, str]) -> list[Any]:
    """Run apply_events.lua: per event (event_id, customer, counter, cancel page, ts, source)."""
    args: list[str | int] = [TTL]
    for event_id, customer, counter, cancel, ts, source in events:
        args += [event_id, customer, counter, "1" if cancel else "0", ts, source]
    return list(client.register_script(APPLY_EVENTS_SCRIPT)(args=args))


def write_scores(client: redis.Redis, *scores: tuple[str, float, str, int, int, int]) -> int:
    """Run write_scores.lua: per score (customer, score, version, scored_at, event_ts, seq)."""
    args: list[str | int] = []
    for customer, score, version, scored_at, event_ts, seq in scores:
        args += [customer, repr(score), version, scored_at, event_ts, seq]
    return int(client.register_script(WRITE_SCORES_SCRIPT)(args=args))


def as_dict(flat: list[str]) -> dict[str, str]:
    return dict(zip(flat[::2], flat[1::2], strict=True))


def test_a_first_seen_event_is_counted_and_its_profile_returned(redis_client: redis.Redis) -> None:
    redis_client.hset("profile:alice", mapping={"plan": "premium"})
    (reply,) = apply(redis_client, ("e1", "alice", "complaints", False, TS, "t/0/7"))

    expected = {"plan": "premium", "complaints": "1", "last_event_ts": str(TS), "event_seq": "1"}
    assert as_dict(reply) == expected == redis_client.hgetall("profile:alice")
    assert redis_client.get("dedup:e1") == "t/0/7"
    assert 0 < redis_client.ttl("dedup:e1") <= TTL


def test_a_redelivered_message_is_answered_again_without_being_counted(
    redis_client: redis.Redis,
) -> None:
    first = apply(redis_client, ("e1", "alice", "page_views", False, TS, "t/0/7"))
    again = apply(redis_client, ("e1", "alice", "page_views", False, TS, "t/0/7"))

    assert as_dict(again[0]) == as_dict(first[0])
    assert as_dict(again[0]) == {"page_views": "1", "last_event_ts": str(TS), "event_seq": "1"}
    assert redis_client.hget("profile:alice", "page_views") == "1"


def test_the_same_event_id_from_another_message_is_a_duplicate(redis_client: redis.Redis) -> None:
    replies = apply(
        redis_client,
        ("e1", "alice", "orders", False, TS, "t/0/7"),
        ("e1", "alice", "orders", False, TS, "t/3/9"),  # same batch, another message
    )
    later = apply(redis_client, ("e1", "alice", "orders", False, TS, "t/1/2"))

    assert replies[1] == 0 and later == [0]
    assert redis_client.hget("profile:alice", "orders") == "1"
    # Without a source position, nothing tells a redelivery apart: a duplicate.
    assert apply(redis_client, ("e1", "alice", "orders", False, TS, "")) == [0]


def test_cancel_pages_are_counted_beside_page_views(redis_client: redis.Redis) -> None:
    apply(
        redis_client,
        ("e1", "alice", "page_views", True, TS, "t/0/1"),
        ("e2", "alice", "page_views", False, TS, "t/0/2"),
        ("e3", "alice", "page_views", True, TS, "t/0/3"),
    )
    profile = redis_client.hgetall("profile:alice")
    assert (profile["page_views"], profile["cancel_page_views"]) == ("3", "2")


def test_last_event_ts_only_moves_forward(redis_client: redis.Redis) -> None:
    replies = apply(
        redis_client,
        ("e1", "alice", "complaints", False, TS + 500, "t/0/1"),
        ("e2", "alice", "complaints", False, TS + 100, "t/0/2"),  # late, still counted
        ("e3", "alice", "complaints", False, TS + 900, "t/0/3"),
    )
    assert [as_dict(reply)["last_event_ts"] for reply in replies] == [
        str(TS + 500),
        str(TS + 500),
        str(TS + 900),
    ]
    assert as_dict(replies[2])["complaints"] == "3"


def test_the_sequence_counts_first_seen_events_only(redis_client: redis.Redis) -> None:
    replies = apply(
        redis_client,
        ("e1", "alice", "page_views", False, TS, "t/0/1"),
        ("e2", "alice", "complaints", True, TS - 60_000, "t/0/2"),  # late: still a new state
        ("e2", "alice", "complaints", False, TS, "t/5/5"),  # duplicate
        ("e1", "alice", "page_views", False, TS, "t/0/1"),  # redelivery
        ("e3", "bob", "orders", False, TS, "t/1/1"),
    )
    assert [reply and as_dict(reply)["event_seq"] for reply in replies] == ["1", "2", 0, "2", "1"]
    assert apply(redis_client, ("e4", "alice", "orders", False, TS - 1, "t/0/3")) != [0]
    assert redis_client.hget("profile:alice", "event_seq") == "3"


def test_a_score_of_an_older_profile_state_is_refused_whatever_its_event_time(
    redis_client: redis.Redis,
) -> None:
    assert write_scores(redis_client, ("alice", 0.4, "v1", TS + 10, TS, 2)) == 1
    stored = {"churn_score": "0.4", "model_version": "v1", "scored_at": str(TS + 10)}

    # An older state, though its event is newer.
    assert write_scores(redis_client, ("alice", 0.9, "v2", TS + 20, TS + 500, 1)) == 0
    assert redis_client.hgetall("profile:alice") == {
        **stored,
        "scored_event_ts": str(TS),
        "scored_seq": "2",
    }

    written = write_scores(
        redis_client,
        ("alice", 0.5, "v2", TS + 30, TS, 2),  # same state: accepted
        ("bob", 0.1, "v2", TS + 30, TS - 50, 0),  # no score yet: accepted
        ("alice", 0.7, "v2", TS + 40, TS + 900, 1),  # older than the one just written
        ("alice", 0.6, "v3", TS + 50, TS - 60_000, 3),  # newer state of an older event
    )
    assert written == 3
    assert redis_client.hgetall("profile:alice") == {
        "churn_score": "0.6",
        "model_version": "v3",
        "scored_at": str(TS + 50),
        "scored_event_ts": str(TS - 60_000),
        "scored_seq": "3",
    }
    assert redis_client.hget("profile:bob", "churn_score") == "0.1"


def test_a_score_stored_before_sequences_existed_counts_as_sequence_0(
    redis_client: redis.Redis,
) -> None:
    redis_client.hset("profile:alice", mapping={"churn_score": "0.4", "scored_event_ts": TS})
    assert write_scores(redis_client, ("alice", 0.8, "v2", TS + 10, TS - 5, 0)) == 1
    assert redis_client.hget("profile:alice", "scored_seq") == "0"


def test_the_wheel_ships_the_lua_scripts(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    (wheel,) = tmp_path.glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert {"streamer/store/apply_events.lua", "streamer/store/write_scores.lua"} <= set(names)
