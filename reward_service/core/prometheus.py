"""Prometheus metrics of one service instance (its own registry, so tests can run several)."""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class ServiceMetrics:
    def __init__(self):
        self.registry = CollectorRegistry()
        self.requests = Counter("rlpr_requests", "Score requests by front and reward", ["front", "reward"],
                                registry=self.registry)
        self.items = Counter("rlpr_items", "Scored items by reward, status and cache hit",
                             ["reward", "status", "cached"], registry=self.registry)
        self.request_errors = Counter("rlpr_request_errors", "Rejected or failed requests by front and code",
                                      ["front", "code"], registry=self.registry)
        self.latency = Histogram("rlpr_batch_seconds", "Time to score one batch", ["reward"], registry=self.registry,
                                 buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300))
        self.inflight = Gauge("rlpr_inflight_items", "Items being scored now, by reward", ["reward"],
                              registry=self.registry)
        self.withdrawn_jobs = Counter("rlpr_withdrawn_jobs", "Queue jobs withdrawn because nobody waits for them",
                                      ["reward", "why"], registry=self.registry)
        self.cache_write_failures = Counter("rlpr_cache_write_failures", "Batches whose results could not be cached",
                                            ["reward"], registry=self.registry)

    def render(self) -> bytes:
        return generate_latest(self.registry)
