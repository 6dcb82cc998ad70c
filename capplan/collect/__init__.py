"""`capplan collect`: pull cAdvisor usage and kube-state-metrics spec from a Prometheus-compatible
API into the store, incrementally and cron-safely. See docs/collect.md.

Modules: `client` (HTTP, retries, auth, TLS), `queries` (PromQL, chunks, batches), `transform`
(answers -> store frames, pure), `run` (the orchestration: lock, chunks, high-water marks, SIGTERM).
"""

from capplan.collect.run import CollectOptions, CollectSummary, StopFlag, collect

__all__ = ["CollectOptions", "CollectSummary", "StopFlag", "collect"]
