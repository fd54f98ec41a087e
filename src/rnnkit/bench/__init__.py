"""Benchmarks that print ratios against torch.nn measured in the same run."""
