"""Benchmarks: Triton's perf_analyzer sweep and the ratio benchmark (ORT, Triton, gateway,
PyTorch)."""
