"""Benchmarks: `python -m bench.<name>`; each prints its figures and the targets they are held to."""
