"""Reward workers: RQ workers that score chunks in their own process and never fork."""
