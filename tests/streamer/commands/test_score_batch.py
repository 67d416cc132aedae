"""`streamer score-batch` on the embedded Redis: exact counts, the stream guard, export, resume."""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast

import pytest
import redis
from click.testing import CliRunner, Result

from models.features import feature_matrix
from models.registry import LoadedModel, ModelRegistry
from streamer.commands.score_batch import score_batch
from streamer.devstack import EmbeddedStack
from streamer.settings import get_settings
from streamer.store.batch_scoring import PROGRESS_KEY, score_profiles
from streamer.store.profiles import APPLY_EVENTS_SCRIPT, WRITE_SCORES_SCRIPT

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def fresh_settings() -> Iterator[None]:
    # Settings are read once per process; each invocation here has its own environment.
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


N_PROFILES = 3000
PLANS = ("basic", "standard", "premium")


def _fill(client: redis.Redis, n: int = N_PROFILES) -> None:
    pipe = client.pipeline(transaction=False)
    for i in range(n):
        pipe.hset(
            f"profile:c-{i}",
            mapping={
                "plan": PLANS[i % 3],
                "contract": "monthly" if i % 2 else "annual",
                "tenure_months": i % 60,
                "monthly_spend": 10 + i % 90,
                "complaints": i % 4,
                "page_views": i % 25,
                "last_event_ts": 1_000_000 + i,
                "event_seq": i % 7,
            },
        )
    # Keys that are not profiles must be left alone.
    pipe.set("dedup:e-1", "c-1")
    pipe.set("other:profile:x", "1")
    pipe.execute()


@pytest.fixture
def client(stack: EmbeddedStack, redis_db: int) -> redis.Redis:
    client = redis.Redis(port=stack.redis_port, db=redis_db, decode_responses=True)
    _fill(client)
    return client


def _command_env(stack: EmbeddedStack, redis_db: int, registry: Path) -> dict[str, str]:
    return {
        "REDIS_URL": f"redis://127.0.0.1:{stack.redis_port}/{redis_db}",
        "MODEL_REGISTRY": str(registry),
    }


RunScoreBatch = Callable[..., Result]


@pytest.fixture
def run_score_batch(stack: EmbeddedStack, redis_db: int, trained_registry: Path) -> RunScoreBatch:
    """`streamer score-batch ARGS` on this test's Redis database and the session's
    registry; the test fails unless the command succeeds."""

    def run(*args: str) -> Result:
        env = _command_env(stack, redis_db, trained_registry)
        result = CliRunner().invoke(score_batch, list(args), env=env)
        assert result.exit_code == 0, result.output
        return result

    return run


def _export_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert rows and list(rows[0]) == ["customer_id", "churn_score", "model_version"]
    return rows


def test_scores_every_profile_exactly_once_and_exports(
    client: redis.Redis, run_score_batch: RunScoreBatch, trained_registry: Path, tmp_path: Path
) -> None:
    # The stream already scored c-7 from a newer profile state than the one stored (its
    # event_seq is 0): keep that.
    client.hset("profile:c-7", mapping={"churn_score": "0.5", "scored_seq": 1})
    export = tmp_path / "out" / "scores.csv"
    result = run_score_batch("--export", str(export), "--page-size", "250")
    assert f"scored {N_PROFILES} profiles with v1: {N_PROFILES - 1} written, 1 skipped" in (
        result.stdout
    )
    assert "profiles/s" in result.stdout

    rows = _export_rows(export)
    assert len(rows) == N_PROFILES
    assert {row["customer_id"] for row in rows} == {f"c-{i}" for i in range(N_PROFILES)}
    assert {row["model_version"] for row in rows} == {"v1"}

    for row in rows[:50]:
        if row["customer_id"] == "c-7":
            continue
        stored = client.hgetall(f"profile:{row['customer_id']}")
        assert float(stored["churn_score"]) == float(row["churn_score"])
        assert stored["model_version"] == "v1"
        # Stamped with the profile's own state, never as a newer one.
        assert stored["scored_seq"] == stored["event_seq"]
        assert stored["scored_event_ts"] == stored["last_event_ts"]
        assert int(stored["scored_at"]) > 0
    # The stored score is the model's score of the stored profile.
    model = ModelRegistry(trained_registry).load("v1")
    profile = client.hgetall("profile:c-10")
    assert float(profile["churn_score"]) == model.score(feature_matrix([profile]))[0]
    assert client.hget("profile:c-7", "churn_score") == "0.5"  # the guard held
    assert client.get("other:profile:x") == "1" and client.type("dedup:e-1") == "string"
    assert not client.exists(PROGRESS_KEY)  # a finished run leaves no progress behind
    assert client.dbsize() == N_PROFILES + 2  # no profile created, none lost


class _StreamDuringScoring:
    """A model whose scoring call lets the stream count a late event and score the newer
    profile state, between the batch's read of a page and its write."""

    def __init__(self, model: LoadedModel, stream: Callable[[], None]) -> None:
        self.version, self._model, self._stream = model.version, model, stream

    def score(self, rows: Any) -> Any:
        self._stream()
        return self._model.score(rows)


def test_a_batch_score_of_an_older_profile_state_never_overwrites_a_newer_stream_score(
    stack: EmbeddedStack, redis_db: int, trained_registry: Path
) -> None:
    client = redis.Redis(port=stack.redis_port, db=redis_db, decode_responses=True)
    static = {"plan": "basic", "contract": "monthly", "tenure_months": 3, "monthly_spend": 20}
    ts = 1_700_000_000_000
    # late: the stream counts one more complaint, stamped a minute before its newest event,
    # and scores that state while the batch holds the profile it read before.
    client.hset(
        "profile:late",
        mapping={**static, "complaints": 1, "event_seq": 3, "last_event_ts": ts},
    )
    # ahead: its stored score has a newer event time but an older state than the profile:
    # the batch replaces it.
    client.hset(
        "profile:ahead",
        mapping={**static, "page_views": 2, "event_seq": 2, "last_event_ts": ts},
    )
    client.hset(
        "profile:ahead",
        mapping={"churn_score": "0.9", "scored_seq": 1, "scored_event_ts": ts + 60_000},
    )
    apply = client.register_script(APPLY_EVENTS_SCRIPT)
    write_scores = client.register_script(WRITE_SCORES_SCRIPT)

    def late_event_scored_by_the_stream() -> None:
        if client.hget("profile:late", "event_seq") == "3":
            apply(args=[60, "e-late", "late", "complaints", "0", ts - 60_000, "t/0/1"])
            write_scores(args=["late", "0.77", "v1", ts + 5, ts - 60_000, 4])

    model = ModelRegistry(trained_registry).load("v1")
    result = score_profiles(
        client, cast(LoadedModel, _StreamDuringScoring(model, late_event_scored_by_the_stream))
    )

    assert (result.scored, result.written, result.skipped) == (2, 1, 1)
    late = client.hgetall("profile:late")
    assert (late["complaints"], late["event_seq"]) == ("2", "4")
    assert (late["churn_score"], late["scored_seq"]) == ("0.77", "4")  # the stream's held
    ahead = client.hgetall("profile:ahead")
    assert ahead["scored_seq"] == "2" and ahead["scored_event_ts"] == str(ts)
    assert float(ahead["churn_score"]) == model.score(feature_matrix([ahead]))[0]


def test_resumes_after_an_interruption_without_duplicates(
    client: redis.Redis, run_score_batch: RunScoreBatch, trained_registry: Path, tmp_path: Path
) -> None:
    model = ModelRegistry(trained_registry).load("v1")
    export = tmp_path / "scores.csv"

    def stop_after_two_pages(done: int) -> None:
        if done >= 2 * 200 - 50:  # SCAN's COUNT is a hint: pages are roughly 200
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        score_profiles(client, model, page_size=200, export=export, on_page=stop_after_two_pages)
    progress = client.hgetall(PROGRESS_KEY)
    done_before = int(progress["scored"])
    assert 0 < done_before < N_PROFILES
    assert progress["model_version"] == "v1" and int(progress["cursor"]) != 0
    # Rows past the checkpoint (a page written to the file but not yet committed) must go.
    with export.open("ab") as fh:
        fh.write(b"c-partial,0.1,v1\nc-torn,0.")
    scored_by_first_run = {
        key for key in client.scan_iter(match="profile:*") if client.hexists(key, "churn_score")
    }
    assert len(scored_by_first_run) == done_before

    result = run_score_batch("--export", str(export), "--page-size", "200")
    assert f"resuming: {done_before} profiles already scored with v1" in result.stderr
    assert f"scored {N_PROFILES} profiles with v1 (resumed): {N_PROFILES} written" in result.stdout
    assert f"{N_PROFILES - done_before} profiles in" in result.stdout
    rows = _export_rows(export)
    ids = [row["customer_id"] for row in rows]
    assert len(ids) == len(set(ids)) == N_PROFILES
    assert all(client.hexists(f"profile:c-{i}", "churn_score") for i in range(N_PROFILES))
    assert not client.exists(PROGRESS_KEY)


@pytest.mark.parametrize(
    ("progress", "discarded"),
    [
        ({"cursor": 12345, "model_version": "v0", "export": "", "scored": 99}, "v0"),
        ({"cursor": "abc", "model_version": "v1", "export": ""}, "v1"),  # unreadable cursor
    ],
    ids=["another-model", "unreadable"],
)
def test_progress_of_another_model_or_unreadable_is_discarded(
    client: redis.Redis,
    run_score_batch: RunScoreBatch,
    progress: dict[str, str | int],
    discarded: str,
) -> None:
    client.hset(PROGRESS_KEY, mapping=progress)
    result = run_score_batch()
    assert f"discarding unfinished run of {discarded}" in result.stderr
    assert f"scored {N_PROFILES} profiles with v1:" in result.stdout


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--model", "v9"], {}, "unknown model version 'v9'"),
        (["--page-size", "0"], {}, "Invalid value for '--page-size'"),
        ([], {"MODEL_REGISTRY": "{empty}"}, "no models registered"),
        ([], {"REDIS_URL": "redis://127.0.0.1:1/0"}, "score-batch against redis://127.0.0.1:1/0"),
    ],
)
def test_bad_input_is_one_line(
    trained_registry: Path,
    tmp_path: Path,
    stack: EmbeddedStack,
    args: list[str],
    env: dict[str, str],
    message: str,
) -> None:
    environ = {
        **_command_env(stack, 15, trained_registry),
        **{k: v.replace("{empty}", str(tmp_path / "none")) for k, v in env.items()},
    }
    result = CliRunner().invoke(score_batch, args, env=environ)
    assert result.exit_code != 0
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error")]
    assert len(errors) == 1 and message in errors[0], result.output


def test_the_command_is_registered() -> None:
    from streamer.cli import cli

    assert "score-batch" in cli.commands


def test_progress_whose_export_is_missing_starts_over(
    client: redis.Redis, run_score_batch: RunScoreBatch, tmp_path: Path
) -> None:
    run_score_batch()  # every profile scored once already: the restart scores them again
    export = tmp_path / "gone.csv"
    client.hset(
        PROGRESS_KEY,
        mapping={
            "cursor": 7,
            "model_version": "v1",
            "export": str(export.resolve()),
            "export_offset": 100,
            "scored": 10,
        },
    )
    result = run_score_batch("--export", str(export))
    assert "discarding unfinished run" in result.stderr
    assert len(_export_rows(export)) == N_PROFILES
