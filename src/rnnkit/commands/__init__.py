"""Typer command groups of the `rnnkit` CLI, each a thin wrapper over library functions."""
