"""rnnkit: recurrent neural networks, complete and correct to the last gradient.

>>> import rnnkit as rk
>>> lstm = rk.LSTM(input_size=8, hidden_size=16, batch_first=True)
"""

from rnnkit.cells import CellBase, ElmanCell, GatedCell, GRUCell, LSTMCell
from rnnkit.cells_min import MinGRU, MinGRUCell, MinLSTM, MinLSTMCell
from rnnkit.kernels.dense import Linear
from rnnkit.layers import GRU, LSTM, RNN, LayerTrace, Recurrent

__version__ = "0.1.0"


def load(run_dir, which: str = "best", device: str = "cpu"):
    """The trained model of a run directory, with its codec: see :func:`rnnkit.api.load`."""
    from rnnkit.api import load as _load

    return _load(run_dir, which, device)


def load_ensemble(run_dirs, which: str = "best", device: str = "cpu"):
    """Several runs' models decoding as one: see :func:`rnnkit.api.load_ensemble`."""
    from rnnkit.api import load_ensemble as _load_ensemble

    return _load_ensemble(run_dirs, which, device)


def train(task: str, out, config=None, overrides=(), records=None):
    """Train a task into a run directory, return the model: see :func:`rnnkit.api.train`."""
    from rnnkit.api import train as _train

    return _train(task, out, config, overrides, records)


__all__ = [
    "GRU",
    "LSTM",
    "RNN",
    "CellBase",
    "ElmanCell",
    "GRUCell",
    "GatedCell",
    "LSTMCell",
    "LayerTrace",
    "Linear",
    "MinGRU",
    "MinGRUCell",
    "MinLSTM",
    "MinLSTMCell",
    "Recurrent",
    "__version__",
    "load",
    "load_ensemble",
    "train",
]
