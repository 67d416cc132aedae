"""`streamer dlq list|replay` against the embedded broker: listing, filters, exact replay."""

from __future__ import annotations

import base64
import time
from pathlib import Path

import orjson
import pytest

from streamer.devstack import EmbeddedStack, free_port
from tests.support.cli import one_error_line, run_cli
from tests.support.services import produce_raw, read_topic
from topics.admin import ensure_topics

pytestmark = pytest.mark.integration

HOUR_MS = 3600 * 1000


def letter(
    stage: str, reason: str, key: bytes, value: bytes, topic: str, offset: int, failed_at: int
) -> dict[str, object]:
    """A dead letter as `streamer.worker.deadletter` writes it."""
    return {
        "reason": reason,
        "error_type": "InvalidEvent" if stage == "validation" else "ResponseError",
        "stage": stage,
        "source": {"topic": topic, "partition": 1, "offset": offset},
        "failed_at": failed_at,
        "key": key.decode(errors="replace"),
        "payload": value.decode(errors="replace"),
        "payload_b64": base64.b64encode(value).decode(),
    }


@pytest.fixture
def seeded(stack: EmbeddedStack, topic_prefix: str, tmp_path: Path) -> dict[str, object]:
    """Three dead letters: two old validation failures, one recent enrichment failure."""
    ensure_topics(stack.kafka_broker, topic_prefix, 4)
    source = f"{topic_prefix}customer-events"
    now = int(time.time() * 1000)
    good = orjson.dumps(
        {"event_id": "e-9", "type": "complaint", "customer_id": "alice", "ts": now - 1000}
    )
    records = [
        letter(
            "validation",
            "invalid JSON: unexpected character",
            b"bob",
            b"{nope",
            source,
            7,
            now - 3 * HOUR_MS,
        ),
        letter(
            "validation", "missing field 'ts'", b"carol", b'{"x": 1}', source, 8, now - 2 * HOUR_MS
        ),
        letter(
            "enrichment",
            "profile update failed: WRONGTYPE",
            b"alice",
            good,
            source,
            9,
            now - 60_000,
        ),
    ]
    produce_raw(
        stack.bootstrap_servers,
        f"{topic_prefix}customer-events-dlq",
        [(str(r["key"]).encode(), orjson.dumps(r)) for r in records],
    )
    env = {"KAFKA_BROKER": stack.kafka_broker, "TOPIC_PREFIX": topic_prefix}
    return {"env": env, "good": good, "now": now, "source": source}


def _cli(tmp_path: Path, seeded: dict[str, object], *args: str):  # type: ignore[no-untyped-def]
    env = seeded["env"]
    assert isinstance(env, dict)
    return run_cli(tmp_path, "dlq", *args, "--idle", "1", env=env)


def test_list_shows_time_stage_source_and_reason(seeded: dict[str, object], tmp_path: Path) -> None:
    result = _cli(tmp_path, seeded, "list")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[0].split() == ["FAILED_AT", "STAGE", "SOURCE", "REASON"]
    assert len(lines) == 4
    source = seeded["source"]
    assert "validation" in lines[1] and f"{source}/1/7" in lines[1] and "invalid JSON" in lines[1]
    assert "enrichment" in lines[3] and "WRONGTYPE" in lines[3]

    limited = _cli(tmp_path, seeded, "list", "--json", "--limit", "2")
    rows = [orjson.loads(line) for line in limited.stdout.splitlines()]
    assert [row["source"]["offset"] for row in rows] == [8, 9]  # the newest two
    assert rows[1]["stage"] == "enrichment" and rows[1]["key"] == "alice"

    recent = _cli(tmp_path, seeded, "list", "--json", "--since", "30m")
    assert [orjson.loads(x)["source"]["offset"] for x in recent.stdout.splitlines()] == [9]
    staged = _cli(tmp_path, seeded, "list", "--json", "--stage", "validation")
    assert len(staged.stdout.splitlines()) == 2
    iso = time.strftime(
        "%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(int(seeded["now"]) / 1000 - 4 * 3600)
    )
    since_iso = _cli(tmp_path, seeded, "list", "--json", "--since", iso)
    assert len(since_iso.stdout.splitlines()) == 3


def test_replay_republishes_original_key_and_bytes(
    stack: EmbeddedStack, seeded: dict[str, object], tmp_path: Path
) -> None:
    dry = _cli(tmp_path, seeded, "replay", "--stage", "enrichment", "--dry-run")
    assert dry.stdout.strip() == f"would replay 1 dead letter(s): {seeded['source']} (1)"
    result = _cli(tmp_path, seeded, "replay", "--stage", "enrichment")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"replayed 1 dead letter(s): {seeded['source']} (1)"
    (replayed,) = read_topic(stack.bootstrap_servers, str(seeded["source"]), expect=1)
    assert (replayed.key(), replayed.value()) == (b"alice", seeded["good"])
    # Where in the dead-letter topic it came from: "partition/offset".
    origin = dict(replayed.headers() or [])["dlq.replayed_from"].decode()
    assert [part.isdigit() for part in origin.split("/")] == [True, True]


def test_empty_or_missing_topic(stack: EmbeddedStack, tmp_path: Path) -> None:
    env = {"KAFKA_BROKER": stack.kafka_broker, "TOPIC_PREFIX": "never-created-"}
    listed = run_cli(tmp_path, "dlq", "list", "--idle", "0.5", env=env)
    assert (listed.returncode, listed.stdout.strip()) == (0, "no dead letters")
    replayed = run_cli(tmp_path, "dlq", "replay", "--idle", "0.5", env=env)
    assert replayed.stdout.strip() == "replayed 0 dead letter(s)"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("list", "--limit", "0"), "Invalid value for '--limit'"),
        (("list", "--since", "yesterday"), "is not a duration"),
        (("replay", "--stage", "parsing"), "Invalid value for '--stage'"),
        (("list", "--idle", "x"), "Invalid value for '--idle'"),
        (("purge",), "No such command 'purge'"),
    ],
)
def test_bad_arguments_give_one_line(tmp_path: Path, args: tuple[str, ...], expected: str) -> None:
    assert expected in one_error_line(run_cli(tmp_path, "dlq", *args))


def test_bad_broker_names_kafka_broker(tmp_path: Path) -> None:
    malformed = run_cli(tmp_path, "dlq", "list", env={"KAFKA_BROKER": "127.0.0.1:9092"})
    assert one_error_line(malformed).startswith("KAFKA_BROKER")
    port = free_port()
    unreachable = run_cli(
        tmp_path, "dlq", "list", env={"KAFKA_BROKER": f"kafka://127.0.0.1:{port}"}
    )
    assert one_error_line(unreachable).startswith(f"KAFKA_BROKER kafka://127.0.0.1:{port}")
