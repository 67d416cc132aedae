"""Running the installed `streamer` console script as users do, in a clean folder."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

STREAMER = str(Path(sys.executable).with_name("streamer"))
# Variables a developer's shell may hold that would change what the commands see.
_CLEARED = ("KAFKA_BROKER", "REDIS_URL", "TOPIC_PREFIX", "REDIS_PASSWORD", "MODEL_REGISTRY")


def run_cli(
    cwd: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run `streamer ARGS` in `cwd` (so no `.streamer/stack.env` is picked up)."""
    base = {k: v for k, v in os.environ.items() if k not in _CLEARED}
    return subprocess.run(
        [STREAMER, *args],
        cwd=cwd,
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    """The single `streamer: error: ...` line of a failed command (no traceback)."""
    assert result.returncode != 0, result
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("streamer: error: "), lines[0]
    return lines[0].removeprefix("streamer: error: ")
