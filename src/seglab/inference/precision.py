"""Running a model outside Lightning's Trainer at a Lightning precision (predict.py).

The logged validation scores were computed under the Trainer's precision plugin; predict.py
uses the same plugin classes, chosen as the Trainer chooses them, so its masks are the ones
that validation and eval.py scored, not fp32 ones that differ at near-tie pixels.
"""

from __future__ import annotations

from pytorch_lightning.plugins.precision import (
    DoublePrecision,
    HalfPrecision,
    MixedPrecision,
    Precision,
)

from seglab.errors import ConfigError


def precision_plugin(precision: str, device: str) -> Precision:
    """Lightning's plugin for `precision` on `device` ("cpu" or "cuda").

    Like the Trainer, a CPU runs 16-mixed as bf16-mixed (fp16 autocast is a CUDA feature).
    """
    if precision in ("32-true", "32"):
        return Precision()
    if precision in ("64-true", "64"):
        return DoublePrecision()
    if precision in ("16-mixed", "bf16-mixed"):
        return MixedPrecision("bf16-mixed" if device == "cpu" else precision, device)
    if precision in ("16-true", "bf16-true"):
        return HalfPrecision(precision)
    raise ConfigError(
        f"precision={precision!r}; expected one of 32-true, 16-mixed, bf16-mixed, 16-true, "
        "bf16-true, 64-true"
    )
