"""Typer command groups; each module wraps importable library functions."""
