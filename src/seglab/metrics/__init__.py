"""Segmentation metrics: one confusion matrix per stage, scores derived from it."""

from seglab.metrics.confusion import ConfusionMatrix, class_ids, segmentation_scores

__all__ = ["ConfusionMatrix", "class_ids", "segmentation_scores"]
