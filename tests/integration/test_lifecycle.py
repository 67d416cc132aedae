"""Model lifecycle on a running worker (embedded broker and Redis): hot swap, refusal, shadow."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
import redis
from confluent_kafka.admin import AdminClient
from threadpoolctl import threadpool_limits

from models.registry import ModelRegistry
from models.train import TrainingSource, train_and_register
from streamer.devstack import EmbeddedStack
from streamer.serving.models import routes_to_challenger
from tests.support.services import (
    Worker,
    eventually,
    http,
    new_worker,
    produce_raw,
    read_topic,
    worker_env,
)
from topics.events import PredictionRecord, utc_now_ms

pytestmark = pytest.mark.integration

STREAMER = str(Path(sys.executable).with_name("streamer"))


@pytest.fixture(scope="module")
def two_versions(trained_registry: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """v1 (the session's model) and a differently trained v2."""
    root = tmp_path_factory.mktemp("lifecycle") / "registry"
    shutil.copytree(trained_registry, root)
    with threadpool_limits(limits=1):
        train_and_register(
            ModelRegistry(root), TrainingSource(n_customers=1500, seed=23), author="tests"
        )
    return root


@pytest.fixture
def registry(two_versions: Path, tmp_path: Path) -> ModelRegistry:
    """A private copy holding v1 and v2, no aliases."""
    shutil.copytree(two_versions, tmp_path / "registry")
    return ModelRegistry(tmp_path / "registry")


def _events(tag: str, n: int, customers: int = 10) -> list[tuple[bytes, bytes]]:
    now = utc_now_ms()
    messages = []
    for i in range(n):
        customer = f"{tag}-c{i % customers}"
        value = {
            "event_id": f"{tag}-{i}-{uuid.uuid4().hex[:8]}",
            "type": "page_view" if i % 3 else "complaint",
            "customer_id": customer,
            "ts": now + i,
            "page": "/pricing",
        }
        messages.append((customer.encode(), orjson.dumps(value)))
    return messages


def _ids(messages: list[tuple[bytes, bytes]]) -> set[str]:
    return {orjson.loads(value)["event_id"] for _, value in messages}


class LiveWorker:
    """One test's worker on its registry copy, with a topic prefix and Redis database of
    its own; stopped when the test ends (see the `live` fixture)."""

    def __init__(
        self,
        stack: EmbeddedStack,
        registry: ModelRegistry,
        redis_db: int,
        prefix: str,
        folder: Path,
    ) -> None:
        self.stack, self.registry, self.prefix, self.folder = stack, registry, prefix, folder
        self.redis_db = redis_db
        self.store = redis.Redis(port=stack.redis_port, db=redis_db, decode_responses=True)
        self.worker: Worker | None = None

    def start(self, **extra: str) -> Worker:
        env = worker_env(
            self.stack,
            prefix=self.prefix,
            redis_db=self.redis_db,
            registry=self.registry.root,
            data_dir=self.folder / "data",
            **extra,
        )
        self.worker = new_worker(env, self.folder).start()
        return self.worker

    def start_with_challenger(self, **extra: str) -> Worker:
        """Started with champion v1 and challenger v2, once it serves both."""
        self.registry.set_alias("champion", "v1")
        self.registry.set_alias("challenger", "v2")
        worker = self.start(**extra)
        eventually(lambda: _assert_metric(worker, 'streamer_model_challenger{version="v2"} 1.0'))
        return worker

    def stop(self) -> None:
        if self.worker is not None:
            self.worker.stop()

    def publish(self, messages: list[tuple[bytes, bytes]]) -> None:
        produce_raw(self.stack.bootstrap_servers, f"{self.prefix}customer-events", messages)

    def records(self, expect: int) -> list[PredictionRecord]:
        topic = f"{self.prefix}churn-predictions"
        # The worker creates the topic with its first prediction; a reader assigned before
        # that would see no partitions at all.
        admin = AdminClient({"bootstrap.servers": self.stack.bootstrap_servers})

        def created() -> None:
            metadata = admin.list_topics(topic, timeout=5).topics.get(topic)
            assert metadata is not None and metadata.error is None and metadata.partitions

        eventually(created, timeout=60)
        # A generous timeout: it only matters when a shared CI host stalls the broker.
        messages = read_topic(self.stack.bootstrap_servers, topic, expect=expect, timeout=120)
        assert len(messages) >= expect, f"{len(messages)} of {expect} prediction records"
        return [PredictionRecord.model_validate_json(m.value()) for m in messages]


@pytest.fixture
def live(
    stack: EmbeddedStack, registry: ModelRegistry, redis_db: int, topic_prefix: str, tmp_path: Path
) -> Iterator[LiveWorker]:
    running = LiveWorker(stack, registry, redis_db, topic_prefix, tmp_path)
    yield running
    running.stop()


def _serving(worker: Worker) -> str | None:
    status, body = http("GET", f"{worker.base_url}/ready")
    assert status == 200, body
    return str(body["model_version"])


def _cli(registry: ModelRegistry, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [STREAMER, *args],
        env={"MODEL_REGISTRY": str(registry.root), "PATH": ""},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_promoted_model_takes_over_a_running_worker_without_gaps(
    registry: ModelRegistry, live: LiveWorker
) -> None:
    registry.set_alias("champion", "v1")
    worker = live.start()
    assert _serving(worker) == "v1"
    before = _events("before", 30)
    live.publish(before)
    assert {r.model_version for r in live.records(len(before))} == {"v1"}

    # Timed from the command's start (the alias moves somewhere inside it), for the log only:
    # how soon is the machine's business; that the swap happens, in order, is the test's.
    promoted_at = time.monotonic()
    promoted = _cli(registry, "models", "promote", "v2")
    assert promoted.returncode == 0, promoted.stderr
    assert promoted.stdout.strip() == "champion -> v2 (was v1)"
    # Keep traffic flowing while the worker notices the promotion.
    during: list[tuple[bytes, bytes]] = []
    while _serving(worker) != "v2":
        assert worker.process is not None and worker.process.poll() is None, worker.log_tail()
        batch = _events(f"during{len(during)}", 5, customers=5)
        live.publish(batch)
        during += batch
        time.sleep(0.2)  # paces the traffic; the loop ends on the swap, not on time
    swap_s = time.monotonic() - promoted_at
    print(f"hot swap observed {swap_s:.2f} s after promote")

    after = _events("after", 30)
    live.publish(after)
    records = live.records(len(before) + len(during) + len(after))
    live.stop()

    # Every valid event scored exactly once, by the model serving when it was scored.
    seen = Counter(r.event_id for r in records)
    assert set(seen) == _ids(before) | _ids(during) | _ids(after)
    assert set(seen.values()) == {1}
    version = {r.event_id: r.model_version for r in records}
    assert {version[e] for e in _ids(before)} == {"v1"}
    assert {version[e] for e in _ids(after)} == {"v2"}
    assert {version[e] for e in _ids(during)} <= {"v1", "v2"}
    assert {r.model_role for r in records} == {"champion"}
    for i in range(10):
        assert live.store.hget(f"profile:after-c{i}", "model_version") == "v2"


def _corrupt_artifact(registry: ModelRegistry, version: str) -> None:
    artifact = registry.root / "versions" / version / "model.joblib"
    data = bytearray(artifact.read_bytes())
    data[len(data) // 2] ^= 0xFF
    artifact.write_bytes(bytes(data))


def _refusals(worker: Worker, version: str) -> float:
    status, text = http("GET", f"{worker.base_url}/metrics")
    assert status == 200
    for line in str(text).splitlines():
        if line.startswith(f'streamer_model_refusals_total{{version="{version}"}}'):
            return float(line.split()[-1])
    return 0.0


def test_a_bad_artifact_never_takes_over_a_running_worker(
    registry: ModelRegistry, live: LiveWorker
) -> None:
    registry.set_alias("champion", "v1")
    # v2: artifact bytes changed after registration. v3: a copy of v1 whose metadata lists
    # the features in another order (checksum intact).
    _corrupt_artifact(registry, "v2")
    shutil.copytree(registry.root / "versions" / "v1", registry.root / "versions" / "v3")
    meta_path = registry.root / "versions" / "v3" / "metadata.json"
    meta = json.loads(meta_path.read_text())
    meta["version"] = "v3"
    meta["features"] = list(reversed(meta["features"]))
    meta_path.write_text(json.dumps(meta))

    refused = _cli(registry, "models", "promote", "v2")
    assert refused.returncode == 1
    assert refused.stderr.count("\n") == 1 and "sha256 mismatch" in refused.stderr
    assert registry.aliases() == {"champion": "v1"}

    worker = live.start()
    assert _serving(worker) == "v1"
    # A registry written by other means (another host, a hand edit) still cannot win.
    for bad in ("v2", "v3"):
        registry.set_alias("champion", bad)
        eventually(lambda bad=bad: _assert_refused_once(worker, bad), timeout=20)
        assert _serving(worker) == "v1"
    messages = _events("bad", 20)
    live.publish(messages)
    records = live.records(len(messages))
    live.stop()
    assert {r.event_id for r in records} == _ids(messages)
    assert {r.model_version for r in records} == {"v1"}
    log = worker.log_path.read_text(errors="replace")
    assert "Refused model v2" in log and "sha256 mismatch" in log
    assert "Refused model v3" in log and "feature order differs" in log


def _assert_refused_once(worker: Worker, version: str) -> None:
    assert _refusals(worker, version) == 1.0


def test_shadow_challenger_scores_every_event_but_never_writes_profiles(
    live: LiveWorker,
) -> None:
    worker = live.start_with_challenger(
        STREAMER_CHALLENGER_MODE="shadow",
        STREAMER_CHALLENGER_SHARE="0.5",  # ignored in shadow mode
    )
    messages = _events("shadow", 24, customers=8)
    live.publish(messages)
    records = live.records(2 * len(messages))
    _assert_metric(worker, 'streamer_predictions_total{role="challenger"} 24.0')
    live.stop()
    assert len(records) == 2 * len(messages)
    roles = Counter((r.event_id, r.model_role, r.model_version) for r in records)
    for event_id in _ids(messages):
        assert roles[(event_id, "champion", "v1")] == 1
        assert roles[(event_id, "challenger", "v2")] == 1
    champion_scores = {
        (r.customer_id, r.churn_score) for r in records if r.model_role == "champion"
    }
    for i in range(8):
        profile = live.store.hgetall(f"profile:shadow-c{i}")
        assert profile["model_version"] == "v1"
        assert (f"shadow-c{i}", float(profile["churn_score"])) in champion_scores


def _assert_metric(worker: Worker, line: str) -> None:
    status, text = http("GET", f"{worker.base_url}/metrics")
    assert status == 200 and line in str(text).splitlines(), line


def test_split_mode_serves_the_hashed_share_with_the_challenger(live: LiveWorker) -> None:
    live.start_with_challenger(STREAMER_CHALLENGER_SHARE="0.5")
    messages = _events("split", 40, customers=40)
    live.publish(messages)
    records = live.records(len(messages))
    live.stop()
    assert sorted(r.event_id for r in records) == sorted(_ids(messages))  # one record each
    expected = {"challenger": "v2", "champion": "v1"}
    for record in records:
        role = "challenger" if routes_to_challenger(record.customer_id, 0.5) else "champion"
        assert (record.model_role, record.model_version) == (role, expected[role])
    assert {r.model_role for r in records} == {"champion", "challenger"}
    # In split mode the challenger serves its customers: its scores reach their profiles.
    for record in records:
        profile = live.store.hgetall(f"profile:{record.customer_id}")
        assert profile["model_version"] == record.model_version
        assert float(profile["churn_score"]) == record.churn_score
