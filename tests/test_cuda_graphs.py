"""The loop backend under CUDA graphs (torch.cuda.make_graphed_callables): a custom cell's
route to cuDNN's speed on a GPU (docs/RESULTS.md, "GPU"). Skipped without CUDA."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import rnnkit as rk

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


class UserCell(rk.CellBase):
    """A cell as a user writes it: h_t = tanh(LN(W_ih x_t + W_hh h_{t-1}))."""

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__(input_size, hidden_size)
        self.ih = nn.Linear(input_size, hidden_size)
        self.hh = nn.Linear(hidden_size, hidden_size, bias=False)
        self.ln = nn.LayerNorm(hidden_size)

    def forward(self, x, h):
        h = torch.tanh(self.ln(self.ih(x) + self.hh(h)))
        return h, h


class OutputOnly(nn.Module):
    def __init__(self, layer):
        super().__init__()
        self.layer = layer

    def forward(self, x):
        return self.layer(x)[0]


LAYERS = {
    "lstm": lambda: rk.LSTM(5, 7, num_layers=2, batch_first=True, backend="loop"),
    "gru": lambda: rk.GRU(5, 7, bidirectional=True, batch_first=True, backend="loop"),
    "elman": lambda: rk.RNN(5, 7, batch_first=True, backend="loop"),
    "user cell": lambda: rk.Recurrent(UserCell(5, 7), batch_first=True),
}


@pytest.mark.parametrize("kind", list(LAYERS))
def test_loop_layers_replay_as_cuda_graphs_with_the_eager_numbers(kind):
    torch.manual_seed(0)
    eager = OutputOnly(LAYERS[kind]()).cuda()
    graphed_module = OutputOnly(LAYERS[kind]()).cuda()
    graphed_module.load_state_dict(eager.state_dict())
    x = torch.randn(4, 9, 5, device="cuda")
    graphed = torch.cuda.make_graphed_callables(graphed_module, (x,))
    for seed in range(2):  # replays read the new input each time
        x = torch.randn(4, 9, 5, device="cuda", generator=torch.Generator("cuda").manual_seed(seed))
        want = eager(x)
        got = graphed(x)
        torch.testing.assert_close(got, want)
        eager.zero_grad(), graphed_module.zero_grad()
        want.square().sum().backward()
        got.square().sum().backward()
        for (name, a), b in zip(eager.named_parameters(), graphed_module.parameters(), strict=True):
            torch.testing.assert_close(b.grad, a.grad, msg=name)
