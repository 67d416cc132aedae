"""The serving models: champion and challenger, loaded from the registry and swapped live.

The roles take the versions `ModelRegistry.serving_versions` names: the champion alias,
else the newest version, and the challenger alias, if set. A version that fails
verification (checksum, load, feature list) is refused once, with a logged reason and a
metric, and the model already serving in that role keeps serving.

Which customers the challenger scores in split mode is decided by `routes_to_challenger`,
a stable hash of the customer id: the same customer lands on the same side in every
worker, every restart and every release (Python's `hash` is salted per process).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from models.aliases import Role
from models.errors import RegistryError
from models.loading import pin_inference_threads
from models.registry import LoadedModel, ModelRegistry
from streamer.worker import metrics

log = logging.getLogger(__name__)

_BUCKET_SCALE = float(1 << 64)


def challenger_bucket(customer_id: str) -> float:
    """A stable position in [0, 1) for a customer id (first 8 bytes of its BLAKE2b digest)."""
    digest = hashlib.blake2b(customer_id.encode("utf-8", "surrogatepass"), digest_size=8)
    return int.from_bytes(digest.digest(), "big") / _BUCKET_SCALE


def routes_to_challenger(customer_id: str, share: float) -> bool:
    """Whether split mode scores this customer with the challenger."""
    return share > 0.0 and challenger_bucket(customer_id) < share


def challenger_mask(customer_ids: Sequence[str], share: float) -> np.ndarray:
    """`routes_to_challenger` for many ids, as a boolean array."""
    if share <= 0.0:
        return np.zeros(len(customer_ids), dtype=bool)
    return np.fromiter(
        (challenger_bucket(cid) < share for cid in customer_ids),
        dtype=bool,
        count=len(customer_ids),
    )


class ScoreCache:
    """The last score per (role, customer), valid only for the same model and feature row.

    Every event type moves a feature counter, so a hit means the same profile snapshot was
    scored before by the same model: a redelivery after a rebalance or restart, whose whole
    batch then costs no model call. Bounded, least recently used out.
    """

    def __init__(self, size: int = 50_000) -> None:
        self.size = size
        self._entries: OrderedDict[tuple[Role, str], tuple[str, tuple[float, ...], float]] = (
            OrderedDict()
        )

    def __len__(self) -> int:
        return len(self._entries)

    def get(
        self, role: Role, customer_id: str, version: str, row: tuple[float, ...]
    ) -> float | None:
        """The cached score, if this customer's last score came from this model and row."""
        entry = self._entries.get((role, customer_id))
        if entry is None or entry[0] != version or entry[1] != row:
            return None
        self._entries.move_to_end((role, customer_id))
        return entry[2]

    def put(
        self, role: Role, customer_id: str, version: str, row: tuple[float, ...], score: float
    ) -> None:
        key = (role, customer_id)
        self._entries[key] = (version, row, score)
        self._entries.move_to_end(key)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)


@dataclass(frozen=True)
class ServingModels:
    """The models serving right now; read once per batch so a swap never splits a batch."""

    champion: LoadedModel
    challenger: LoadedModel | None


class ModelHolder:
    """Holds the champion and challenger models and refreshes them from the registry."""

    def __init__(self, registry: ModelRegistry) -> None:
        self.registry = registry
        self.current: LoadedModel | None = None  # the champion
        self.challenger: LoadedModel | None = None
        self.refused: dict[str, str] = {}
        self._loaded = asyncio.Event()

    async def refresh(self) -> bool:
        """Take the registry's champion and challenger into service if they changed.

        True if either role changed.
        """
        try:
            targets = await asyncio.to_thread(self.registry.serving_versions)
        except RegistryError as error:
            # A corrupt aliases file or unreadable registry: keep serving what we have.
            log.warning("Registry unreadable, keeping the current models: %s", error)
            return False
        changed = False
        champion = await self._obtain(targets.champion, self.current)
        if champion is not self.current and champion is not None:
            previous, self.current = self.current, champion
            if previous is not None:
                metrics.MODEL_SERVING.labels(previous.version).set(0)
            metrics.MODEL_SERVING.labels(champion.version).set(1)
            log.info(
                "Serving model %s as champion (was %s)",
                champion.version,
                previous.version if previous else "none",
            )
            self._loaded.set()
            changed = True
        if targets.challenger is None:
            challenger = None
        else:
            challenger = await self._obtain(targets.challenger, self.challenger)
        if challenger is not self.challenger:
            previous_challenger, self.challenger = self.challenger, challenger
            if previous_challenger is not None:
                metrics.MODEL_CHALLENGER.labels(previous_challenger.version).set(0)
            if challenger is not None:
                metrics.MODEL_CHALLENGER.labels(challenger.version).set(1)
            log.info(
                "Challenger is now %s (was %s)",
                challenger.version if challenger else "none",
                previous_challenger.version if previous_challenger else "none",
            )
            changed = True
        return changed

    async def _obtain(self, target: str | None, serving: LoadedModel | None) -> LoadedModel | None:
        """The model for `target`: the one serving, one already loaded, a fresh load, or
        (when `target` is refused or absent) the one serving."""
        if target is None or target in self.refused:
            return serving
        for loaded in (serving, self.current, self.challenger):
            if loaded is not None and loaded.version == target:
                return loaded
        try:
            model = await asyncio.to_thread(self.registry.load, target)
        except RegistryError as refusal:
            self.refused[target] = str(refusal)
            metrics.MODEL_REFUSALS.labels(target).inc()
            log.error("Refused model %s, keeping %s: %s", target, _name(serving), refusal)
            return serving
        # Back on the event loop's thread, the one that scores.
        pin_inference_threads()
        metrics.MODEL_LOADS.labels(model.version).inc()
        return model

    def serving(self) -> ServingModels | None:
        """Both roles as one consistent snapshot, or None before the first champion loads."""
        if self.current is None:
            return None
        challenger = self.challenger
        if challenger is not None and challenger.version == self.current.version:
            challenger = None  # the same model on both sides compares nothing
        return ServingModels(self.current, challenger)

    async def wait(self) -> LoadedModel:
        """The champion, waiting until there is one."""
        await self._loaded.wait()
        assert self.current is not None
        return self.current

    async def wait_serving(self) -> ServingModels:
        """Both roles, waiting until a champion is loaded."""
        await self._loaded.wait()
        snapshot = self.serving()
        assert snapshot is not None
        return snapshot


def _name(model: LoadedModel | None) -> str:
    return model.version if model else "none"
