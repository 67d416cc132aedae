"""A Faust worker as a child process: started on a loopback web port, ready once `/ready`
answers 200. The demo, the benchmark and the tests all start their workers here."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from streamer.devstack.processes import http_ok, spawn, stop, wait_until

WORKER_APP = "streamer.app"


@dataclass
class WorkerProcess:
    """A running `faust -A <app> worker`, its web port and its log."""

    process: subprocess.Popen[bytes]
    port: int
    log: Path
    name: str = "worker"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def returncode(self) -> int | None:
        """None while the worker runs, else its exit code."""
        return self.process.poll()

    def wait_ready(self, timeout: float, interval: float = 0.3) -> None:
        """Until `/ready` answers 200: `ChildExited` if the worker dies first,
        `ChildNotReady` when `timeout` runs out (both name the log's last lines)."""
        probe = http_ok(f"{self.base_url}/ready")
        wait_until(probe, self.process, self.name, self.log, timeout, interval)

    def log_tail(self, lines: int) -> str:
        """The last `lines` lines of the worker's log ('' before it wrote any)."""
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, timeout: float) -> None:
        """SIGTERM (the worker leaves its group and commits), SIGKILL after `timeout`."""
        stop(self.process, timeout)


def start_worker(
    env: Mapping[str, str],
    port: int,
    log: Path,
    *,
    data_dir: Path | None = None,
    app: str = WORKER_APP,
    cwd: Path | None = None,
    extra_args: Sequence[str] = (),
    name: str = "worker",
) -> WorkerProcess:
    """Start `faust -A app worker` serving its web views on 127.0.0.1:`port`, its output
    appended to `log`. `env` is laid over this process's environment; `data_dir`, when
    given, becomes STREAMER_DATA_DIR (each worker of a host needs its own)."""
    command = [sys.executable, "-m", "faust", "-A", app, "worker", "-l", "info"]
    command += ["--web-port", str(port), "--web-host", "127.0.0.1", *extra_args]
    if data_dir is not None:
        env = {**env, "STREAMER_DATA_DIR": str(data_dir)}
    return WorkerProcess(spawn(command, log, cwd, env), port, log, name)
