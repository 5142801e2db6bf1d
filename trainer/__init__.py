"""The rlpr trainer: PPO with entropy and batch-entropy terms, and the same terms for TRL's GRPO and RLOO."""
