"""Typer sub-apps of the ``rnnkit`` command line, each a thin wrapper over the library."""
