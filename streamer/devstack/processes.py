"""Child processes of the dev stack: free loopback ports, start, readiness, stop."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path

READY_TIMEOUT_S = 15.0


class StackError(RuntimeError):
    """The embedded stack could not start."""


class ChildExited(StackError):
    """A child exited before it was ready."""

    def __init__(self, message: str, returncode: int) -> None:
        super().__init__(message)
        self.returncode = returncode


class ChildNotReady(StackError):
    """A child was still not ready when the wait ran out."""


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


def spawn(
    command: list[str], log: Path, cwd: Path | None, env: Mapping[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Start a server child in its own session, its output appended to `log`.

    Its own session keeps it out of the terminal's foreground process group: Ctrl-C reaches
    the parent alone, which then stops its children in order (clients before the servers
    they need), instead of every process at once.
    """
    with log.open("ab") as output:
        return subprocess.Popen(
            command,
            stdout=output,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=cwd,
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )


def wait_until(
    probe: Callable[[], bool],
    process: subprocess.Popen[bytes],
    name: str,
    log: Path,
    timeout: float = READY_TIMEOUT_S,
    interval: float = 0.05,
) -> None:
    """Block until `probe()` is true; `ChildExited` if the child exits first, `ChildNotReady`
    if `timeout` runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ChildExited(
                f"{name} exited with code {process.returncode} during start: {tail(log)}",
                process.returncode,
            )
        if probe():
            return
        time.sleep(interval)
    raise ChildNotReady(f"{name} was not ready within {timeout:.0f}s: {tail(log)}")


def port_open(port: int) -> Callable[[], bool]:
    """A probe: something accepts TCP connections on loopback `port`."""

    def probe() -> bool:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return True
        return False

    return probe


def http_ok(url: str) -> Callable[[], bool]:
    """A probe: `url` answers 200."""

    def probe() -> bool:
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
        return False

    return probe


def tail(log: Path, lines: int = 5) -> str:
    """The last lines of a child's log, for an error message."""
    try:
        text = log.read_text(errors="replace").strip().splitlines()[-lines:]
    except OSError:
        return f"see {log}"
    return " | ".join(text) or f"nothing logged in {log}"


def stop(process: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """SIGTERM, then SIGKILL if it lingers; waits for the exit either way."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def kill(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL (a crash, for fault drills) and reap."""
    if process.poll() is None:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
