"""Learning-rate schedules: linear warm-up then cosine decay, scalable for per-block rates."""

from __future__ import annotations

import math

import keras


@keras.saving.register_keras_serializable(package="tlstudio")
class WarmupCosine(keras.optimizers.schedules.LearningRateSchedule):
    """From 0 up to ``peak`` over ``warmup_steps``, then a cosine down to ``peak * floor`` at ``total_steps``.

    Args:
        peak: the highest rate, reached at the end of the warm-up.
        total_steps: the phase's length in optimizer steps.
        warmup_steps: steps of linear warm-up.
        floor: the last rate as a fraction of ``peak``.
    """

    def __init__(self, peak: float, total_steps: int, warmup_steps: int = 0, floor: float = 0.0):
        self.peak = float(peak)
        self.total_steps = max(1, int(total_steps))
        self.warmup_steps = max(0, min(int(warmup_steps), self.total_steps - 1))
        self.floor = float(floor)

    def __call__(self, step):
        step = keras.ops.cast(step, "float32")
        warm = max(self.warmup_steps, 1)
        warmup = self.peak * (step + 1) / warm
        span = max(self.total_steps - self.warmup_steps, 1)
        progress = keras.ops.clip((step - self.warmup_steps) / span, 0.0, 1.0)
        cosine = self.peak * (self.floor + (1 - self.floor) * 0.5 * (1 + keras.ops.cos(math.pi * progress)))
        return keras.ops.where(step < self.warmup_steps, warmup, cosine)

    def scaled(self, factor: float) -> WarmupCosine:
        """The same shape at ``factor`` times the rate (a lower block's multiplier)."""
        return WarmupCosine(self.peak * factor, self.total_steps, self.warmup_steps, self.floor)

    def get_config(self) -> dict:
        return {
            "peak": self.peak,
            "total_steps": self.total_steps,
            "warmup_steps": self.warmup_steps,
            "floor": self.floor,
        }
