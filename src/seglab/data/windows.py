"""A grid of windows over an image side: sliding-window inference and tiled datasets share it.

It lives in `seglab.data` (below `seglab.inference`) because a dataset (Inria's fixed tiles)
cuts its images with the same grid the sliding-window predictor uses.
"""

from __future__ import annotations


def window_starts(length: int, window: int, stride: int) -> list[int]:
    """Start offsets covering [0, length): every `stride`, the last window flush with the end."""
    if length <= window:
        return [0]
    starts = list(range(0, length - window + 1, stride))
    if starts[-1] + window < length:
        starts.append(length - window)
    return starts
