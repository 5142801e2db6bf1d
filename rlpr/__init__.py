"""rlpr: reinforcement learning for language models from programmed rewards."""

__version__ = "0.1.0"
