"""A worker joins while another is still reading its table changelogs.

The soak found it: one of two workers killed and restarted while the survivor was still
recovering the tables it had taken over; at the restarted worker's join the survivor's
recovery crashed ("Offset must be a positive integer") and the worker stopped. See
`streamer.worker.faust_patches.recovery`. Here the condition is made on purpose: a long
changelog for the first worker to read, and a second worker started once the first says
it is restoring; the join must land during that read, and the first worker must live on.
"""

from __future__ import annotations

import re

import orjson
import pytest

from tests.support.faults import Scenario, wait_until
from tests.support.services import produce_raw

pytestmark = pytest.mark.faults

# Enough changelog records that reading them outlasts a second worker's start and join:
# Faust recovered 350 to 2,000 records/s on the 2-core machine the test was written on, and
# a worker took about 30 s from start to join there.
CHANGELOG_RECORDS = 100_000
RECOVERY_TIMEOUT_S = 900.0
RESTORING = "Restoring state from changelog topics"
RECOVERED = "Done reading from changelog topics"
JOINING = "Revoking previously assigned partitions"


def _fill_changelog(scenario: Scenario, topic: str) -> None:
    batch: list[tuple[bytes | None, bytes]] = []
    for i in range(CHANGELOG_RECORDS):
        batch.append((orjson.dumps(f"recovery-c{i}"), orjson.dumps(1)))
        if len(batch) == 50_000:
            produce_raw(scenario.stack.bootstrap_servers, topic, batch)
            batch = []
    if batch:
        produce_raw(scenario.stack.bootstrap_servers, topic, batch)


@pytest.mark.timeout(1200)
def test_a_worker_joining_during_table_recovery_does_not_crash_the_recovering_one(
    scenario: Scenario,
) -> None:
    env = scenario.env()
    first = scenario.worker({**env, "STREAMER_DATA_DIR": str(scenario.folder / "1")}, "first")
    first.start()  # creates the changelog topics
    first.stop()
    changelog = f"{scenario.prefix}churn-streamer-customer-page-views-changelog"
    _fill_changelog(scenario, changelog)

    log_of_first = first.log_path
    since = log_of_first.stat().st_size  # this run's lines only: the log is appended to

    def first_log() -> str:
        with log_of_first.open(errors="replace") as log:
            log.seek(since)
            return log.read()

    first.start(wait_ready=False)
    assert wait_until(lambda: RESTORING in first_log(), timeout=300), first.log_tail(60)
    second = scenario.worker({**env, "STREAMER_DATA_DIR": str(scenario.folder / "2")}, "second")
    second.start(wait_ready=False)
    # Both read about half the changelog once the join is done: slow on a loaded machine.
    first.wait_ready(timeout=RECOVERY_TIMEOUT_S)
    second.wait_ready(timeout=RECOVERY_TIMEOUT_S)
    text = first_log()
    # The condition under test: the join's rebalance reached the first worker before it
    # had read its changelogs to the end.
    restoring_at = text.find(RESTORING)
    first_read = text.find(RECOVERED, restoring_at)
    joined = text.find(JOINING, restoring_at)
    assert joined >= 0 and (first_read < 0 or joined < first_read), (
        "the second worker joined after the first had recovered: make the changelog longer"
    )
    assert first.process is not None and first.process.poll() is None, first.log_tail(60)
    assert "Crashed reason" not in text, re.findall(r".*Crashed reason.*", text)
