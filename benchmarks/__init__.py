"""Benchmarks: datasets and episodes, the trainer, and one module per benchmark."""
