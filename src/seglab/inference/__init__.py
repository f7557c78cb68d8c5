"""Inference: whole image or sliding window, optional flip TTA; shared by val, eval and predict."""

from seglab.inference.predictor import InferSettings, infer_logits
from seglab.inference.sliding import slide_inference

__all__ = ["InferSettings", "infer_logits", "slide_inference"]
