"""Prometheus metrics of one service instance (its own registry, so tests can run several)."""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest


class ServiceMetrics:
    def __init__(self):
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "rlpr_requests", "Score requests by front and reward", ["front", "reward"], registry=self.registry
        )
        self.items = Counter(
            "rlpr_items", "Scored items by reward, status and cache hit", ["reward", "status", "cached"],
            registry=self.registry,
        )
        self.request_errors = Counter(
            "rlpr_request_errors", "Rejected or failed requests by front and code", ["front", "code"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "rlpr_batch_seconds", "Time to score one batch", ["reward"], registry=self.registry,
            buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
