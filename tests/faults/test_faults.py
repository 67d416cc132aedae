"""The fault suite: duplicates, malformed input, a Redis outage, a killed worker, SIGTERM.

Each scenario prints one line of figures (`FAULTS <scenario>: ...`). Lost and double
counted are 0 in the profile counters in every scenario. Run alone with `make faults`;
against a real Kafka with `KAFKA_BROKER=kafka://host:9092 make faults`.
"""

from __future__ import annotations

import base64
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import orjson
import pytest

from streamer.devstack import EmbeddedStack
from tests.support.faults import (
    KillOneOfTwo,
    Measure,
    Scenario,
    customer_page_views,
    encode,
    event_ids,
    make_events,
    on_tansu,
    wait_until,
)
from tests.support.malformed import generate_cases
from tests.support.services import Worker, http

pytestmark = [pytest.mark.faults, pytest.mark.integration]

STREAMER = str(Path(sys.executable).with_name("streamer"))


def test_duplicates_and_replays_count_once(scenario: Scenario) -> None:
    valid = make_events(1500, run=f"{scenario.prefix}dup", seed=2)
    rng = random.Random(3)
    resent = rng.sample(valid, 200)  # producer retries: the same bytes again
    batch_again = valid[500:1000]  # a whole batch re-published
    rewritten = [{**e, "ts": int(str(e["ts"])) + 7} for e in rng.sample(valid, 50)]
    messages = [encode(e) for e in valid]
    messages += [encode(e) for e in resent]
    messages += [encode(e) for e in batch_again]
    messages += [encode(e) for e in rewritten]  # same event_id, different content
    measure = scenario.measure
    worker = scenario.worker(scenario.env()).start()
    scenario.publish(messages[:1500])
    stalled = _stall_report(measure, valid, worker)
    # The replays arrive after the originals were counted and committed.
    scenario.publish(messages[1500:])
    figures, records, _ = measure.figures(
        "duplicates+replays", sent=len(messages), valid=valid, base_url=worker.base_url
    )
    figures.report(stalled)
    assert (figures.lost, figures.double) == (0, 0)
    assert figures.profiles == len(valid)
    # Duplicates are dropped before scoring: one prediction per first-seen event, or at
    # least one if a stall restart redelivered uncommitted enriched events (at-least-once).
    per_event = Counter(r["event_id"] for r in records)
    assert set(per_event) == event_ids(valid), "a prediction for every valid event and no other"
    rescored = sorted(i for i, n in per_event.items() if n > 1)
    if not stalled:
        assert rescored == [], f"{len(rescored)} events scored twice, e.g. {rescored[:3]}"
    assert figures.tables == figures.table_expected


def test_fuzzed_malformed_events_all_dead_lettered_none_valid_lost(scenario: Scenario) -> None:
    cases = generate_cases(150)
    assert len({c.category for c in cases}) == 11, "every category drawn"
    valid = make_events(800, run=f"{scenario.prefix}fz", seed=4)
    messages: list[tuple[bytes | None, bytes]] = [encode(e) for e in valid]
    rng = random.Random(5)
    for case in cases:  # interleaved with the valid ones
        messages.insert(rng.randrange(len(messages) + 1), (case.key, case.value))
    measure = scenario.measure
    env = scenario.env()
    worker = scenario.worker(env).start()
    scenario.publish(messages)
    _bad_http_requests_answer_4xx(worker)
    stalled = _stall_report(measure, valid, worker)
    figures, _, letters = measure.figures(
        "malformed-fuzz",
        sent=len(messages),
        valid=valid,
        base_url=worker.base_url,
        dead_expected=len(cases),
    )

    # Every malformed message is in the DLQ once, with its precise reason.
    expected: dict[tuple[bytes | None, bytes], list[str]] = {}
    for case in cases:
        expected.setdefault((case.key, case.value), []).append(case.reason)
    unmatched = []
    for letter in letters:
        original = (letter["_raw_key"], base64.b64decode(letter["payload_b64"]))
        reasons = expected.get(original, [])
        match = next((r for r in reasons if r in letter["reason"]), None)
        if match is None:
            unmatched.append((letter["reason"], original[1][:60]))
            continue
        reasons.remove(match)
        assert letter["stage"] == "validation"
        assert letter["_headers"]["dlq.stage"] == b"validation"
        assert letter["_headers"]["dlq.reason"].decode() == letter["reason"][:1024]
        assert letter["_headers"]["dlq.failed_at"] == str(letter["failed_at"]).encode()
        assert letter["_headers"]["dlq.error_type"] == letter["error_type"].encode()
    assert not unmatched, unmatched[:5]
    assert not [r for rs in expected.values() for r in rs], "malformed events missing"

    # The CLI sees the same dead letters, and a replay re-publishes every one of them.
    cli_env = {**env, "STREAMER_DATA_DIR": str(scenario.folder / "cli")}
    listed = _streamer(cli_env, "dlq", "list", "--json", "--limit", "1000", "--idle", "1")
    # JSON lines end in \n; a key may hold other Unicode line breaks.
    assert listed.stdout.count("\n") == len(cases), listed.stderr
    replay = _streamer(cli_env, "dlq", "replay", "--stage", "validation", "--idle", "1")
    assert replay.stdout.startswith(f"replayed {len(cases)} dead letter(s)"), replay
    # Still malformed after a replay: dead-lettered again, nothing counted.
    again = measure.dead_letters(expect=2 * len(cases))
    assert len(again) == 2 * len(cases)
    counted, lost, double = measure.lost_and_double(valid)
    assert (counted, lost, double) == (len(valid), 0, 0)
    figures.report(
        f"categories={len({c.category for c in cases})}",
        f"dlq replay re-dead-lettered {len(again) - len(cases)}",
        stalled,
    )
    assert (figures.lost, figures.double) == (0, 0)
    assert figures.dead_letters == len(cases)
    assert figures.predicted_events == len(valid)
    assert figures.tables == figures.table_expected


def _streamer(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [STREAMER, *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )


def _bad_http_requests_answer_4xx(worker: Worker) -> None:
    """Bad requests at the HTTP door: 4xx with a short JSON error; the stream carries on."""
    url = f"{worker.base_url}/api/predict"
    answers = [
        (http("POST", url, b"x" * (64 * 1024 + 1)), 413, "larger than"),
        (http("POST", url, b"{not json"), 422, "not valid JSON"),
        (http("POST", url, b"[1, 2]"), 422, "JSON object"),
        (http("POST", url, orjson.dumps({"tenure_months": "many"})), 422, "tenure_months"),
        (http("GET", f"{worker.base_url}/api/profiles/nobody-at-all"), 404, "no profile"),
    ]
    for (status, body), expected_status, words in answers:
        assert status == expected_status, body
        assert isinstance(body, dict) and words in body["error"], body
        assert len(orjson.dumps(body)) < 1024  # bounded: no echo of the request


def test_redis_outage_mid_stream(scenario: Scenario) -> None:
    # A Redis of its own, with an append-only file so a stop and start keeps the data.
    outage = EmbeddedStack(workdir=(scenario.folder / "redis").resolve(), redis_persistent=True)
    outage.workdir.mkdir(parents=True)  # type: ignore[union-attr]
    outage.start_redis()
    redis_url = f"redis://127.0.0.1:{outage.redis_port}/0"
    valid = make_events(3000, run=f"{scenario.prefix}out", seed=6)
    measure = Measure(scenario.stack, scenario.prefix, redis_url)
    worker = scenario.worker(scenario.env(REDIS_URL=redis_url))
    saw_503 = back_to_200 = False
    down_s = 0.0
    try:
        worker.start()
        producer = scenario.publish_in_background(valid, chunk=200, pause_s=0.4)
        wait_until(lambda: producer.sent >= 800, timeout=30)
        outage.stop_process("redis")
        down_at = time.monotonic()
        saw_503 = wait_until(lambda: _ready_status(worker) == 503, timeout=15)
        time.sleep(max(0.0, 5.0 - (time.monotonic() - down_at)))
        outage.start_redis()
        down_s = time.monotonic() - down_at
        back_to_200 = wait_until(lambda: _ready_status(worker) == 200, timeout=60)
        producer.finish()
        stalled = _stall_report(measure, valid, worker)
        figures, _, _ = measure.figures(
            "redis-outage", sent=len(valid), valid=valid, base_url=worker.base_url
        )
        retries = _metric(worker, "streamer_store_retries_total")
    finally:
        worker.stop()
        outage.stop()
    figures.report(
        f"redis down {down_s:.1f}s, ready 503={saw_503} "
        f"then 200={back_to_200}, store retries={retries:.0f}",
        stalled,
    )
    assert saw_503 and back_to_200
    assert retries > 0
    assert (figures.lost, figures.double) == (0, 0)
    assert figures.profiles == len(valid)
    assert figures.predicted_events == len(valid)
    assert figures.tables == figures.table_expected


def _ready_status(worker: Worker) -> int:
    try:
        status, _ = http("GET", f"{worker.base_url}/ready", timeout=3)
    except OSError:
        return 0
    return status


def _metric(worker: Worker, name: str) -> float:
    status, text = http("GET", f"{worker.base_url}/metrics")
    assert status == 200
    for line in str(text).splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


# A tumbling window longer than any run (windows start at multiples of it since the epoch:
# 2001-09-09 to 2033-05-18).
ONE_WINDOW_S = 1_000_000_000

# A survivor that stops making progress for this long has stalled (it is not slow: it
# counts thousands of events a second, and one session timeout is 6 s).
STALL_S = 60.0


@pytest.mark.parametrize("kill_at", ["mid-stream", "before-first-commit"])
def test_sigkill_one_of_two_workers(kill_at: str, scenario: Scenario) -> None:
    """The survivor takes over the dead worker's partitions and processes every event.

    `before-first-commit` kills the victim as soon as it has handled its first events, so
    its partitions have no committed offset: the case in which a takeover used to skip
    their backlog (see streamer.worker.faust_patches.aiokafka_transport).
    """
    valid = make_events(4000, run=f"{scenario.prefix}kill", customers=200, seed=7)
    measure = scenario.measure
    # One page-view window spans the whole run, so its counts must equal the totals.
    run = KillOneOfTwo(scenario, valid, chunk=300, STREAMER_PAGE_WINDOW=str(ONE_WINDOW_S))
    if kill_at == "mid-stream":
        progressed = wait_until(lambda: measure.counted() >= 1200, timeout=120)
    else:
        progressed = wait_until(lambda: _enriched_by(run.victim) > 0, timeout=120, interval=0.05)
    assert progressed, "no progress before the kill"
    killed_at = run.kill_victim()
    committed_at_kill = measure.committed_by_partition("customer-events")
    done, counted = run.drain(idle_s=STALL_S)
    committed = measure.committed_by_partition("customer-events")
    survivor = run.survivor
    stalled = "" if done else _stall_report(measure, valid, survivor, timeout=0)
    figures, records, _ = measure.figures(
        f"sigkill-1-of-2 ({kill_at})", sent=len(valid), valid=valid, base_url=survivor.base_url
    )
    per_event = Counter(r["event_id"] for r in records)
    redelivered = sum(n - 1 for n in per_event.values())
    table_gap = figures.table_expected - figures.tables
    tansu = on_tansu(scenario.stack)
    windowed, per_customer = measure.windowed_and_customer_views(survivor.base_url, valid)
    expected_per_customer = customer_page_views(valid)
    customers_off = sum(per_customer[c] != n for c, n in expected_per_customer.items())
    figures.report(
        f"killed after {killed_at} counted, committed then {committed_at_kill}; "
        f"re-scored on redelivery {redelivered}",
        stalled,
        _table_note(table_gap, tansu),
        f"window {windowed}/{figures.table_expected}, customers off {customers_off}",
    )
    assert done, (
        f"survivor stalled: {counted} of {len(valid)} counted, no progress for {STALL_S:.0f}s, "
        f"group committed {committed}\n{survivor.log_tail()}"
    )
    assert (figures.lost, figures.double) == (0, 0)
    assert figures.profiles == len(valid)
    assert figures.predicted_events == len(valid)
    # Exact at least once: no table counts a redelivered or re-enriched event twice. On
    # Tansu a table may come up short (see _table_note), never over.
    if tansu:
        assert figures.tables <= figures.table_expected
        assert windowed <= figures.table_expected
        assert all(per_customer[c] <= n for c, n in expected_per_customer.items())
    else:
        assert figures.tables == figures.table_expected
        assert windowed == figures.table_expected
        assert per_customer == expected_per_customer


def _enriched_by(worker: Worker) -> float:
    """Events this worker has enriched so far (0 until its metrics answer)."""
    try:
        return _metric(worker, 'streamer_events_total{outcome="enriched",stage="enrichment"}')
    except (OSError, AssertionError):
        return 0.0


def _table_note(table_gap: int, tansu: bool) -> str:
    if table_gap > 0 and tansu:
        return (
            f"tables short by {table_gap}: table recovery reads to the high watermark, which "
            "Tansu under-reports"
        )
    if table_gap > 0:
        return f"tables short by {table_gap}"
    if table_gap < 0:
        return f"tables over by {-table_gap}"
    return "tables exact"


def test_sigterm_during_burst_drains_and_commits(scenario: Scenario) -> None:
    valid = make_events(10000, run=f"{scenario.prefix}term", customers=300, seed=8)
    measure = scenario.measure
    env = scenario.env()
    first = scenario.worker(env, "first")
    second = scenario.worker(env, "second")
    first.start()
    scenario.publish([encode(e) for e in valid])
    assert wait_until(lambda: measure.counted() >= 2500, timeout=60), "no progress"
    assert first.process is not None
    first.process.send_signal(signal.SIGTERM)
    exit_code = first.process.wait(60)
    counted_at_exit = measure.counted()
    committed = measure.committed_offsets("customer-events")
    drained = "drained the batch in hand" in first.log_path.read_text(errors="replace")
    second.start()
    stalled = _stall_report(measure, valid, second)
    figures, records, _ = measure.figures(
        "sigterm-burst", sent=len(valid), valid=valid, base_url=second.base_url
    )
    per_event = Counter(r["event_id"] for r in records)
    rescored = sum(per_event.values()) - len(per_event)
    figures.report(
        f"exit code {exit_code}; at exit counted={counted_at_exit} committed={committed} "
        f"(batch drained: {drained}); re-scored after restart {rescored}",
        stalled,
    )
    assert exit_code == 0
    # Every event counted before exit had its offset committed: none is read again.
    assert committed == counted_at_exit
    assert counted_at_exit < len(valid), "SIGTERM came after the burst was done"
    assert (figures.lost, figures.double) == (0, 0)
    assert figures.profiles == len(valid)
    assert figures.predicted_events == len(valid)


def test_sigterm_mid_stream_commits_what_it_counted(scenario: Scenario) -> None:
    """A worker stopped while events keep arriving finishes the batch in hand: when it has
    exited, the committed input offsets cover every event it enriched and counted, and no
    other; a new worker then does the rest, each event counted and enriched once."""
    valid = make_events(12000, run=f"{scenario.prefix}stop", customers=300, seed=9)
    measure = scenario.measure
    first = scenario.worker(scenario.env(), "first").start()
    producer = scenario.publish_in_background(valid, chunk=300, pause_s=0.3)
    assert wait_until(lambda: measure.counted() >= 1500, timeout=90), "no progress"
    assert producer.is_alive(), "the stream ended before SIGTERM"
    assert first.process is not None
    first.process.send_signal(signal.SIGTERM)
    exit_code = first.process.wait(60)
    counted_at_exit = measure.counted()
    committed_input = measure.committed_by_partition("customer-events")
    committed_enriched = measure.committed_by_partition("customer-events-enriched")
    producer.finish()
    inputs = measure.positions("customer-events", expect=len(valid))
    enriched = measure.positions("customer-events-enriched", expect=counted_at_exit)
    predicted = measure.positions("churn-predictions", expect=len(enriched))

    assert exit_code == 0, first.log_tail()
    # The enrichment stage's outputs exist for exactly the input events below the
    # committed offsets: none is lost, none produced again by the next worker.
    assert _ids(enriched) == _below(inputs, committed_input)
    assert counted_at_exit == len(_below(inputs, committed_input))
    # Not asserted: the enriched topic is read by two agents and its offset is committed
    # once both are done, so an event the prediction agent scored while the counting
    # agent still held it unprocessed in its micro-batch buffer at the stop is scored
    # again by the next worker (prediction records are at least once).
    scored_uncommitted = _ids(predicted) - _below(enriched, committed_enriched)

    second = scenario.worker(scenario.env(), "second").start()
    stalled = _stall_report(measure, valid, second)
    figures, records, _ = measure.figures(
        "sigterm-stream", sent=len(valid), valid=valid, base_url=second.base_url
    )
    rescored = _repeated([(str(r["event_id"]), 0, 0) for r in records])
    figures.report(
        f"exit code {exit_code}; at exit counted={counted_at_exit}, scored beyond the "
        f"committed offsets {len(scored_uncommitted)}; re-scored after restart {len(rescored)}",
        stalled,
    )
    assert (figures.lost, figures.double) == (0, 0)
    assert figures.profiles == len(valid)
    assert figures.predicted_events == len(valid)
    assert figures.tables == figures.table_expected
    enriched_after = measure.positions("customer-events-enriched", expect=len(valid))
    assert _repeated(enriched_after) == []
    assert set(rescored) <= scored_uncommitted


def _ids(positions: list[tuple[str, int, int]]) -> set[str]:
    return {event_id for event_id, _, _ in positions}


def _below(positions: list[tuple[str, int, int]], committed: dict[int, int | None]) -> set[str]:
    """The event ids at offsets below their partition's committed offset."""
    return {
        event_id
        for event_id, partition, offset in positions
        if offset < (committed.get(partition) or 0)
    }


def _repeated(positions: list[tuple[str, int, int]]) -> list[str]:
    counts = Counter(event_id for event_id, _, _ in positions)
    return sorted(event_id for event_id, n in counts.items() if n > 1)


def _stall_report(
    measure: Measure, valid: list[dict[str, object]], worker: Worker, timeout: float = 90
) -> str:
    """Wait for every event; if some stay unprocessed, name them and restart the worker.

    A restarted worker resumes from the committed offsets, so events a live process left
    behind are read again unless the commit passed them (then they are lost, and the
    assertions fail). The note keeps such a stall visible in the figures.
    """
    try:
        measure.wait_counted(valid, timeout=timeout)
        return ""
    except AssertionError:
        pass
    seen = {key.removeprefix("dedup:") for key in measure.store.scan_iter("dedup:*", count=5000)}
    missing = [str(e["event_id"]) for e in valid if str(e["event_id"]) not in seen]
    committed = measure.committed_offsets("customer-events")
    worker.stop()
    worker.start()
    measure.wait_counted(valid, timeout=90)
    return (
        f"STALL: {len(missing)} events not processed by the running worker in {timeout:.0f}s "
        f"(e.g. {missing[:3]}; group committed {committed}); all counted after a restart"
    )
