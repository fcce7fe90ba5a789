"""Speed scripts run by hand (``python -m memorybench.benchmarks.speed.throughput``, ``.memory_ops``):
not registered benchmarks, no run directory; each prints a report ending in one JSON line."""
