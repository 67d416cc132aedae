"""Faust's table recovery (faust-streaming 0.15.3) that honours a rebalance arriving while it
reads the active changelogs.

Recovery waits for the active changelogs through ``_wait``, which raises ``RebalanceAgain``
when another rebalance starts meanwhile; but that wait sits in ``try: ... except Exception:
finish_span(...)`` (the "recovery-actives" tracing span in ``Recovery._restart_recovery``,
unchanged since robinhood/faust), which swallows it. The loop then carries on with the old
plan: it logs "Recovery complete" and seeks the standby changelog partitions of the *new*
assignment, whose start offsets are not built yet (``None``); aiokafka refuses them with
"Offset must be a positive integer", the recovery service crashes and the worker stops.
Seen in the soak (``tests/faults/soak.py``) on Apache Kafka: one of two workers killed with
SIGKILL and restarted while the survivor was still reading the changelogs of the
partitions it had taken over; the survivor crashed at the restarted worker's join.

Here each step recovery takes after that wait first checks for a newer rebalance and, if
one started, raises ``RebalanceAgain``, which the loop already handles by starting over
with the new assignment.
"""

from __future__ import annotations

from typing import Any

from faust.tables import TableManager as FaustTableManager
from faust.tables.recovery import RebalanceAgain
from faust.tables.recovery import Recovery as FaustRecovery


class Recovery(FaustRecovery):
    """Table recovery that starts over when a rebalance lands after the active wait."""

    def _raise_if_rebalancing(self) -> None:
        # The loop clears this signal when it starts a round; set now, a newer
        # rebalance has begun and this round's plan is stale.
        if self.signal_recovery_start.is_set():
            raise RebalanceAgain()

    async def _seek_offsets(self, *args: Any, **kwargs: Any) -> None:
        self._raise_if_rebalancing()
        await super()._seek_offsets(*args, **kwargs)

    async def _build_highwaters(self, *args: Any, **kwargs: Any) -> None:
        self._raise_if_rebalancing()
        await super()._build_highwaters(*args, **kwargs)

    async def on_recovery_completed(self, generation_id: int = 0) -> None:
        self._raise_if_rebalancing()
        await super().on_recovery_completed(generation_id)


class TableManager(FaustTableManager):
    """Faust's table manager with the recovery above (``faust.App(TableManager=...)``)."""

    @property
    def recovery(self) -> Recovery:
        if self._recovery is None:
            self._recovery = Recovery(self.app, self, beacon=self.beacon, loop=self.loop)
        return self._recovery  # type: ignore[return-value]
