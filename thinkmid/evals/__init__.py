"""Evaluations: reasoning benchmarks (one module per task under `reasoning/`) and their statistics."""
