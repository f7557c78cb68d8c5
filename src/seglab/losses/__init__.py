"""Segmentation losses. smp provides Dice, Focal, Jaccard, Lovasz and Tversky; these fill the gaps."""

from seglab.losses.compound import CompoundLoss
from seglab.losses.cross_entropy import CrossEntropyLoss

__all__ = ["CompoundLoss", "CrossEntropyLoss"]
