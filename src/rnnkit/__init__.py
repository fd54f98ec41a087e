"""rnnkit: recurrent neural networks, complete and correct to the last gradient.

>>> import rnnkit as rk
>>> lstm = rk.LSTM(input_size=8, hidden_size=16, batch_first=True)
"""

from rnnkit.cells import CellBase, ElmanCell, GatedCell, GRUCell, LSTMCell
from rnnkit.layers import GRU, LSTM, RNN, LayerTrace, Recurrent

__version__ = "0.1.0"

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
    "Recurrent",
    "__version__",
]
