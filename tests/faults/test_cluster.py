"""Opt-in drill on a three-broker Apache Kafka cluster: the partition leader's broker killed.

`make faults-cluster` (outside `make test`: three JVMs want more than a 2-core CI host
spares). Every topic has three replicas and `min.insync.replicas=2`, so an acknowledged
write survives one broker; the worker's producer waits for all in-sync replicas.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient

from streamer.devstack import EmbeddedStack
from tests.support.faults import Background, Measure, encode, make_events, wait_until
from tests.support.services import new_worker, worker_env

pytestmark = [pytest.mark.cluster, pytest.mark.faults, pytest.mark.integration]

STALL_S = 90.0


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedStack]:
    stack = EmbeddedStack(workdir=tmp_path_factory.mktemp("cluster"), broker="kafka", kafka_nodes=3)
    with stack:
        yield stack


def partition_leader(stack: EmbeddedStack, topic: str, partition: int) -> int:
    admin = AdminClient({"bootstrap.servers": stack.bootstrap_servers})
    metadata = admin.list_topics(topic, timeout=10).topics[topic]
    return int(metadata.partitions[partition].leader)


def replication(stack: EmbeddedStack, topic: str) -> set[int]:
    admin = AdminClient({"bootstrap.servers": stack.bootstrap_servers})
    metadata = admin.list_topics(topic, timeout=10).topics[topic]
    return {len(p.replicas) for p in metadata.partitions.values()}


def test_leader_broker_killed_mid_stream_loses_nothing(
    cluster: EmbeddedStack, trained_registry: Path, tmp_path: Path
) -> None:
    prefix = "cluster-"
    valid = make_events(6000, run="cluster", customers=300, seed=17)
    measure = Measure(cluster, prefix, f"redis://127.0.0.1:{cluster.redis_port}/1")
    env = worker_env(
        cluster,
        prefix=prefix,
        redis_db=1,
        registry=trained_registry,
        data_dir=tmp_path / "data",
        STREAMER_REPLICATION_FACTOR="3",
    )
    worker = new_worker(env, tmp_path).start()
    try:
        source = f"{prefix}customer-events"
        assert replication(cluster, source) == {3}
        producer = Background(
            cluster.bootstrap_servers, source, [encode(e) for e in valid], chunk=300, pause_s=0.2
        )
        producer.start()
        assert wait_until(lambda: measure.counted() >= 1500, timeout=120), "no progress"
        assert cluster.cluster is not None
        leader = partition_leader(cluster, source, 0)
        cluster.cluster.stop_node(leader, crash=True)
        killed_at = measure.counted()
        producer.finish()
        done, counted = measure.wait_progress(valid, idle_s=STALL_S)
        assert done, f"stalled at {counted} of {len(valid)}:\n{worker.log_tail()}"
        new_leader = partition_leader(cluster, source, 0)
        figures, records, _ = measure.figures(
            "leader-broker-killed (3 brokers)", sent=len(valid), valid=valid,
            base_url=worker.base_url,
        )  # fmt: skip
    finally:
        worker.stop()
    rescored = sum(n - 1 for n in Counter(r["event_id"] for r in records).values())
    figures.notes.append(
        f"broker {leader} (leader of {source}/0) killed after {killed_at} counted; "
        f"new leader {new_leader}; re-scored on redelivery {rescored}"
    )
    print(figures.line())
    assert new_leader != leader
    assert (figures.lost, figures.double) == (0, 0)
    assert figures.profiles == len(valid)
    assert figures.predicted_events == len(valid)
