"""Segmentation metrics: one confusion matrix per stage, scores derived from it."""

from seglab.metrics.confusion import ConfusionMatrix, segmentation_scores

__all__ = ["ConfusionMatrix", "segmentation_scores"]
