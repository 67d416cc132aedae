"""Faust agents: enrichment, page-view counting and prediction (found by autodiscovery)."""

from streamer.worker.agents import counter, enrichment, exactly_once, prediction

__all__ = ["counter", "enrichment", "exactly_once", "prediction"]
