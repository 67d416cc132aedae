"""Apache Kafka for the dev stack: jars from Maven Central, KRaft nodes on loopback.

The jars are resolved once by Maven from `kafka-pom.xml` into a cache folder (git-ignored
`.streamer/kafka/` by default) and reused by every later start. Each node runs broker and
controller in one JVM with a small heap; its log dir is formatted once, so a node stopped
or killed and started again keeps its data (broker-restart drills).
"""

from __future__ import annotations

import base64
import logging
import os
import re
import shutil
import subprocess
import uuid
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from streamer.devstack.processes import (
    StackError,
    ensure_port_free,
    free_port,
    kill,
    port_open,
    spawn,
    stop,
    tail,
    wait_until,
)

POM = Path(__file__).with_name("kafka-pom.xml")
CACHE_VARIABLE = "STREAMER_KAFKA_CACHE"
MIN_JAVA = 17
READY_TIMEOUT_S = 60.0
MAVEN_TIMEOUT_S = 600.0
JVM_OPTIONS = ["-Xms128m", "-Xmx512m", "-XX:+UseSerialGC"]
log = logging.getLogger(__name__)


def kafka_version() -> str:
    """The Apache Kafka version the pom pins."""
    namespace = {"m": "http://maven.apache.org/POM/4.0.0"}
    found = ElementTree.parse(POM).find("m:properties/m:kafka.version", namespace)
    assert found is not None and found.text, f"no kafka.version in {POM}"
    return found.text


def java_major_version() -> int | None:
    """The major version of `java` on PATH, or None without one."""
    java = shutil.which("java")
    if java is None:
        return None
    try:
        result = subprocess.run(
            [java, "-version"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r'version "(\d+)(?:\.(\d+))?', result.stderr + result.stdout)
    if match is None:
        return None
    major = int(match.group(1))
    # Java 8 and older call themselves 1.x.
    return int(match.group(2) or 0) if major == 1 else major


def default_cache() -> Path:
    """`STREAMER_KAFKA_CACHE`, else `.streamer/kafka` (git-ignored) in the current folder."""
    return Path(os.environ.get(CACHE_VARIABLE) or ".streamer/kafka")


def jar_dir(cache: Path) -> Path:
    """Where this version's jars live once fetched."""
    return cache / kafka_version() / "lib"


def jars_cached(cache: Path) -> bool:
    return (jar_dir(cache) / ".complete").is_file()


def availability(cache: Path) -> tuple[bool, str]:
    """Whether Apache Kafka can run here, and why (or why not), in a few words."""
    java = java_major_version()
    if java is None:
        return False, "no Java on PATH"
    if java < MIN_JAVA:
        return False, f"Java {java} is older than {MIN_JAVA}"
    if jars_cached(cache):
        return True, f"Java {java} and cached jars in {jar_dir(cache)}"
    if shutil.which("mvn") is None:
        return False, f"Java {java} but no Maven to fetch the broker's jars"
    return True, f"Java {java} and Maven"


def ensure_jars(cache: Path) -> Path:
    """The folder of the broker's jars, fetched with Maven on first use."""
    target = jar_dir(cache)
    if jars_cached(cache):
        return target
    usable, reason = availability(cache)
    if not usable:
        raise StackError(f"Apache Kafka needs Java {MIN_JAVA}+ and Maven: {reason}")
    mvn = shutil.which("mvn")
    assert mvn is not None
    staging = target.with_name("lib.partial")
    shutil.rmtree(staging, ignore_errors=True)
    log.warning("Fetching Apache Kafka %s jars with Maven into %s (once)", kafka_version(), target)
    command = [
        mvn,
        "-q",
        "-B",
        "-f",
        str(POM),
        "dependency:copy-dependencies",
        f"-DoutputDirectory={staging.resolve()}",
        "-DincludeScope=runtime",
    ]
    try:
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=MAVEN_TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired:
        raise StackError(
            f"Maven did not fetch the Kafka jars within {MAVEN_TIMEOUT_S:.0f}s"
        ) from None
    if result.returncode != 0:
        last = (result.stdout + result.stderr).strip().splitlines()[-3:]
        raise StackError(f"Maven could not fetch the Kafka jars: {' | '.join(last)}")
    (staging / ".complete").write_text(kafka_version())
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    return target


def new_cluster_id() -> str:
    """A KRaft cluster id: 16 random bytes, URL-safe base64 without padding."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


@dataclass
class KafkaNode:
    """One KRaft node (broker and controller) with its ports and log dir."""

    node_id: int
    port: int
    controller_port: int
    home: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def log_dir(self) -> Path:
        return self.home / "data"

    @property
    def log_file(self) -> Path:
        return self.home / "kafka.log"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


@dataclass
class KafkaCluster:
    """`nodes` Apache Kafka nodes on loopback. One node is the dev broker; three make the
    replicated cluster of the opt-in fault drill."""

    home: Path
    nodes: int = 1
    first_port: int = 0
    cache: Path = field(default_factory=default_cache)
    # Off as on many production clusters: every topic the service uses must be declared.
    auto_create_topics: bool = False
    extra_config: dict[str, str] = field(default_factory=dict)
    members: list[KafkaNode] = field(default_factory=list)

    @property
    def bootstrap_servers(self) -> str:
        return ",".join(f"127.0.0.1:{node.port}" for node in self.members)

    @property
    def broker_url(self) -> str:
        return ";".join(f"kafka://127.0.0.1:{node.port}" for node in self.members)

    def start(self) -> None:
        """Fetch the jars if needed, format every node once, start them, wait until ready."""
        jars = ensure_jars(self.cache)
        if not self.members:
            self._plan(jars)
        # All at once: a node opens its client port only once the controller quorum forms.
        for node in self.members:
            self.start_node(node.node_id, wait=False)
        for node in self.members:
            assert node.process is not None
            wait_until(
                port_open(node.port),
                node.process,
                f"Kafka node {node.node_id}",
                node.log_file,
                READY_TIMEOUT_S,
            )
        self.wait_ready()

    def _plan(self, jars: Path) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        if self._reuse_formatted():
            return
        for index in range(self.nodes):
            port = self.first_port + index if self.first_port else free_port()
            controller = free_port()
            self.members.append(
                KafkaNode(index + 1, port, controller, self.home / f"node-{index + 1}")
            )
        cluster_id = new_cluster_id()
        for node in self.members:
            node.home.mkdir(parents=True, exist_ok=True)
            properties = node.home / "server.properties"
            properties.write_text(self._properties(node))
            result = subprocess.run(
                [
                    *self._java(jars),
                    "kafka.tools.StorageTool",
                    "format",
                    f"--cluster-id={cluster_id}",
                    "-c",
                    str(properties),
                ],
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            if result.returncode != 0:
                raise StackError(
                    f"formatting Kafka node {node.node_id} failed: {result.stderr[-300:]}"
                )

    def _reuse_formatted(self) -> bool:
        """Take over nodes formatted by an earlier run in this folder (their data, ports)."""
        found = sorted(self.home.glob("node-*/server.properties"))
        if len(found) != self.nodes or not all(
            (path.parent / "data" / "meta.properties").is_file() for path in found
        ):
            return False
        for path in found:
            config = dict(
                line.split("=", 1) for line in path.read_text().splitlines() if "=" in line
            )
            ports = [int(port) for port in re.findall(r":(\d+)", config["listeners"])]
            self.members.append(KafkaNode(int(config["node.id"]), ports[0], ports[1], path.parent))
        return True

    def _properties(self, node: KafkaNode) -> str:
        replicas = min(3, self.nodes)
        voters = ",".join(f"{n.node_id}@127.0.0.1:{n.controller_port}" for n in self.members)
        config = {
            "process.roles": "broker,controller",
            "node.id": str(node.node_id),
            "controller.quorum.voters": voters,
            "listeners": f"PLAINTEXT://127.0.0.1:{node.port},CONTROLLER://127.0.0.1:{node.controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{node.port}",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "inter.broker.listener.name": "PLAINTEXT",
            "log.dirs": str(node.log_dir.resolve()),
            "auto.create.topics.enable": str(self.auto_create_topics).lower(),
            "num.partitions": "4",
            "default.replication.factor": str(replicas),
            "min.insync.replicas": str(max(1, replicas - 1)),
            # Internal topics sized for a laptop: a group's first join creates 4, not 50.
            "offsets.topic.num.partitions": "4",
            "offsets.topic.replication.factor": str(replicas),
            "transaction.state.log.num.partitions": "4",
            "transaction.state.log.replication.factor": str(replicas),
            "transaction.state.log.min.isr": str(max(1, replicas - 1)),
            "share.coordinator.state.topic.replication.factor": str(replicas),
            "share.coordinator.state.topic.min.isr": str(max(1, replicas - 1)),
            # A dev group starts at once instead of waiting 3 s for more members.
            "group.initial.rebalance.delay.ms": "0",
            **self.extra_config,
        }
        return "".join(f"{key}={value}\n" for key, value in config.items())

    def _java(self, jars: Path) -> list[str]:
        java = shutil.which("java")
        if java is None:
            raise StackError("Apache Kafka needs Java on PATH")
        return [
            java,
            *JVM_OPTIONS,
            "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
            "-Dorg.slf4j.simpleLogger.showDateTime=true",
            "-cp",
            f"{jars.resolve()}/*",
        ]

    def node(self, node_id: int) -> KafkaNode:
        return next(node for node in self.members if node.node_id == node_id)

    def start_node(self, node_id: int, wait: bool = True) -> None:
        """Start (or restart, keeping its log dir) one node; waits for its port with `wait`."""
        node = self.node(node_id)
        if node.running:
            return
        ensure_port_free(node.port, f"Kafka broker (node {node_id})")
        ensure_port_free(node.controller_port, f"Kafka controller (node {node_id})")
        command = [
            *self._java(jar_dir(self.cache)),
            "kafka.Kafka",
            str(node.home / "server.properties"),
        ]
        node.process = spawn(command, node.log_file, node.home)
        if wait:
            wait_until(
                port_open(node.port),
                node.process,
                f"Kafka node {node_id}",
                node.log_file,
                READY_TIMEOUT_S,
            )

    def stop_node(self, node_id: int, crash: bool = False) -> None:
        """Stop one node: a controlled shutdown, or SIGKILL with `crash`."""
        node = self.node(node_id)
        if node.process is not None:
            if crash:
                kill(node.process)
            else:
                stop(node.process, 30.0)
            node.process = None

    def stop(self) -> None:
        """Stop every node at once: one by one, the last ones wait for a lost quorum."""
        running = [node for node in self.members if node.process is not None]
        for node in running:
            assert node.process is not None
            if node.process.poll() is None:
                node.process.terminate()
        for node in running:
            assert node.process is not None
            stop(node.process, 20.0)
            node.process = None

    def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> None:
        """Until a metadata request answers with every running node and a controller."""
        expected = {node.node_id for node in self.members if node.running}
        first = next(node for node in self.members if node.running)
        assert first.process is not None

        def probe() -> bool:
            return metadata_brokers(self.bootstrap_servers) >= expected

        wait_until(probe, first.process, "Apache Kafka", first.log_file, timeout)

    def describe_failure(self) -> str:
        return " / ".join(f"node {n.node_id}: {tail(n.log_file, 2)}" for n in self.members)


def metadata_brokers(bootstrap: str) -> set[int]:
    """Node ids a metadata request returns (empty when no broker answers yet)."""
    from confluent_kafka.admin import AdminClient

    config: dict[str, Any] = {
        "bootstrap.servers": bootstrap,
        # Quiet while nodes are still coming up: refused connections are expected.
        "log_level": 0,
        "error_cb": lambda error: None,
    }
    admin = AdminClient(config)
    try:
        metadata = admin.list_topics(timeout=1.0)
    except Exception:  # KafkaException while nothing answers; probed again shortly
        return set()
    if metadata.controller_id is None or metadata.controller_id < 0:
        return set()
    return set(metadata.brokers)
