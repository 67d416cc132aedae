"""The serving model: loaded from the registry, swapped when the registry says so.

A version that fails verification (checksum, load, feature list) is refused once, with a
logged reason and a metric, and the model already serving keeps serving.
"""

from __future__ import annotations

import asyncio
import logging

from models.errors import RegistryError
from models.registry import LoadedModel, ModelRegistry
from streamer import metrics

log = logging.getLogger(__name__)


class ModelHolder:
    """Holds the model currently serving and refreshes it from the registry."""

    def __init__(self, registry: ModelRegistry) -> None:
        self.registry = registry
        self.current: LoadedModel | None = None
        self.refused: dict[str, str] = {}
        self._loaded = asyncio.Event()

    async def refresh(self) -> bool:
        """Take the registry's serving version into service if it is new; True if swapped."""
        try:
            target = await asyncio.to_thread(self.registry.serving_version)
        except RegistryError as error:
            # A dangling alias or unreadable registry: keep serving what we have.
            log.warning("Registry unreadable, keeping the current model: %s", error)
            return False
        if target is None or target in self.refused:
            return False
        if self.current is not None and self.current.version == target:
            return False
        try:
            model = await asyncio.to_thread(self.registry.load, target)
        except RegistryError as refusal:
            self.refused[target] = str(refusal)
            metrics.MODEL_REFUSALS.labels(target).inc()
            log.error("Refused model %s: %s", target, refusal)
            return False
        previous = self.current
        self.current = model
        if previous is not None:
            metrics.MODEL_SERVING.labels(previous.version).set(0)
        metrics.MODEL_SERVING.labels(model.version).set(1)
        metrics.MODEL_LOADS.labels(model.version).inc()
        log.info(
            "Serving model %s (was %s)", model.version, previous.version if previous else "none"
        )
        self._loaded.set()
        return True

    async def wait(self) -> LoadedModel:
        """The serving model, waiting until there is one."""
        await self._loaded.wait()
        assert self.current is not None
        return self.current
