"""Benchmark scripts (run as ``python benchmarks/<name>.py``); not timed tests."""
