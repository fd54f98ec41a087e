"""rnnkit: recurrent neural networks, complete and correct to the last gradient."""

__version__ = "0.1.0"
