"""Serving models: the model holder that follows the registry's aliases, the champion /
challenger split and the score cache (used by the worker and by on-demand scoring)."""
