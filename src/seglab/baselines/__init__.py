"""Non-learned baselines scored like models: the floor every trained model must beat."""

from seglab.baselines.methods import METHODS, Baseline, KMeansColour, Majority, Otsu, build_baseline

__all__ = ["METHODS", "Baseline", "KMeansColour", "Majority", "Otsu", "build_baseline"]
