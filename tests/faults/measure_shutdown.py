"""How long a worker takes from SIGTERM to exit while events keep arriving.

    python -m tests.faults.measure_shutdown [--stops 10]

Starts one Apache Kafka (or Tansu) and Redis, then, `--stops` times, a worker with its own
topic prefix and Redis database fed a steady stream; SIGTERM once it has counted some of
it. Prints one line per stop (seconds to exit, exit code, events counted at exit against
the committed offsets; with `--peer` the peer counts and commits too) and the seconds
between SIGTERM, the shutdown steps Faust logs and the exit; a stop slower than
`--dump-after` seconds gets a `py-spy dump` of the worker in its folder. A measurement, not
a test: nothing here asserts a duration.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import subprocess
import tempfile
import time
from datetime import datetime
from pathlib import Path

from models.registry import ModelRegistry
from models.train import TrainingSource, train_and_register
from streamer.devstack import EmbeddedStack
from tests.support.faults import Scenario, make_events, wait_until

# Log lines that mark a shutdown phase: (label, text), in the order they happen.
PHASES = [
    ("stopping", "[^Worker]: Stopping..."),
    ("flush", "Flush producer buffer..."),
    ("agents", "[^--AgentManager]: Stopping..."),
    ("consumer", "[^--Consumer]: Stopping..."),
    ("producer", "[^--Producer]: Stopping..."),
    ("loop closed", "[^Worker]: Closing event loop"),
]


def stop_once(
    args: argparse.Namespace, stack: EmbeddedStack, registry: Path, folder: Path, run: int
) -> str:
    """One stop under load; its figures as one line."""
    with Scenario(stack, f"s{run}-", 1 + run % 15, registry, folder) as scenario:
        events = make_events(20000, run=f"s{run}", customers=300, seed=run)
        env = scenario.env(STREAMER_PROCESSING_GUARANTEE=args.guarantee)
        worker = scenario.worker(env).start()
        if args.peer:  # a second worker of the group, with its own local data, keeps running
            peer_env = {**env, "STREAMER_DATA_DIR": str(folder / "peer-data")}
            scenario.worker(peer_env, "peer").start()
        producer = scenario.publish_in_background(events, chunk=args.chunk, pause_s=args.pause)
        measure = scenario.measure
        wait_until(lambda: measure.counted() >= args.counted, timeout=120)
        if args.peer_joins:  # SIGTERM at a different moment of the peer's start and join
            peer_env = {**env, "STREAMER_DATA_DIR": str(folder / "peer-data")}
            scenario.worker(peer_env, "peer").start(wait_ready=False)
            time.sleep(2.0 * (run % 5))
        assert worker.process is not None
        pid = worker.process.pid
        sent_term, sent_term_wall = time.monotonic(), time.time()
        worker.process.send_signal(signal.SIGTERM)
        dumped = False
        while worker.process.poll() is None:
            if not dumped and time.monotonic() - sent_term > args.dump_after:
                dump = subprocess.run(
                    [shutil.which("py-spy") or "py-spy", "dump", "--pid", str(pid)],
                    capture_output=True,
                    text=True,
                )
                (folder / "py-spy.txt").write_text(dump.stdout + dump.stderr)
                dumped = True
            time.sleep(0.05)
        took = time.monotonic() - sent_term
        counted = measure.counted()
        committed = measure.committed_offsets("customer-events")
        producer.finish()
        phases = shutdown_phases(worker.log_path, sent_term_wall, sent_term_wall + took)
    return (
        f"stop {run}: {took:5.1f}s exit={worker.process.returncode} counted={counted} "
        f"committed={committed} py-spy={'yes' if dumped else 'no'} folder={folder}\n"
        f"    {phases}"
    )


def shutdown_phases(log: Path, signalled: float, exited: float) -> str:
    """Seconds between SIGTERM, the shutdown steps Faust logs and the exit."""
    marks: dict[str, float] = {}
    for line in log.read_text(errors="replace").splitlines():
        for label, text in PHASES:
            if text in line and label not in marks:
                stamp = datetime.strptime(line[1:24], "%Y-%m-%d %H:%M:%S,%f")
                marks[label] = stamp.timestamp()
    steps, last = [], signalled
    for label, _ in PHASES:
        if label in marks and marks[label] >= signalled - 1:
            steps.append(f"{label} +{marks[label] - last:.1f}")
            last = marks[label]
    steps.append(f"exit +{exited - last:.1f}")
    return ", ".join(steps)


def main(args: argparse.Namespace) -> None:
    root = Path(tempfile.mkdtemp(prefix="shutdown-"))
    registry = root / "registry"
    train_and_register(
        ModelRegistry(registry), TrainingSource(n_customers=3000, seed=11), author="measure"
    )
    with EmbeddedStack(workdir=root / "stack", broker=args.broker) as stack:
        print(f"broker: {stack.broker_name}; logs under {root}", flush=True)
        for run in range(1, args.stops + 1):
            folder = root / f"stop{run}"
            folder.mkdir()
            print(stop_once(args, stack, registry, folder, run), flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stops", type=int, default=10)
    parser.add_argument("--dump-after", type=float, default=8.0)
    parser.add_argument("--chunk", type=int, default=250, help="events per publish")
    parser.add_argument("--pause", type=float, default=0.1, help="seconds between publishes")
    parser.add_argument("--counted", type=int, default=2000, help="SIGTERM once counted")
    parser.add_argument(
        "--guarantee", choices=["at_least_once", "exactly_once"], default="at_least_once"
    )
    parser.add_argument("--peer", action="store_true", help="a second worker in the group")
    parser.add_argument(
        "--peer-joins", action="store_true", help="a second worker joins just before SIGTERM"
    )
    parser.add_argument("--broker", choices=["auto", "kafka", "tansu"], default="kafka")
    main(parser.parse_args())
