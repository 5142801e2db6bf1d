"""KL-penalty coefficients: fixed, or adaptive (Ziegler et al. 2019) as in RLHF-style PPO."""
from __future__ import annotations


class FixedKL:
    def __init__(self, value: float):
        self.value = value

    def update(self, current_kl: float, n_steps: int) -> None:
        pass


class AdaptiveKL:
    """Moves the coefficient so the measured KL tracks `target`, at most 20% per horizon."""

    def __init__(self, init: float, target: float, horizon: int):
        self.value = init
        self.target = target
        self.horizon = horizon

    def update(self, current_kl: float, n_steps: int) -> None:
        error = min(max(current_kl / self.target - 1.0, -0.2), 0.2)
        self.value *= 1.0 + error * n_steps / self.horizon


def make_kl(spec: str, target: float, horizon: int) -> FixedKL | AdaptiveKL:
    if spec == "adaptive":
        return AdaptiveKL(0.2, target, horizon)
    return FixedKL(float(spec))
