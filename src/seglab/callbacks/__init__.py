"""Lightning callbacks that keep a run safe: stop on divergence, save and report on interrupt."""

from seglab.callbacks.guards import FiniteLossGuard, RunGuard

__all__ = ["FiniteLossGuard", "RunGuard"]
