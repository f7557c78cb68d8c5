"""Segmentation losses. smp provides Dice, Focal, Jaccard, Lovasz and Tversky; these fill the gaps."""

from seglab.losses.boundary import BoundaryLoss, HausdorffDTLoss
from seglab.losses.compound import CompoundLoss, Ramp
from seglab.losses.cross_entropy import CrossEntropyLoss

__all__ = ["BoundaryLoss", "CompoundLoss", "CrossEntropyLoss", "HausdorffDTLoss", "Ramp"]
