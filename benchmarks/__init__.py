"""Benchmark scripts: ``python -m benchmarks.run_all`` (``make bench``) writes BENCHMARKS.md."""
