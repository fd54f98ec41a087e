"""A cell of one's own that splits its step (``project_input`` + ``recurrent_step``): the
layer's loop hoists the state-free work out of time and gives the numbers of the plain
step, padded or not, in every direction and layer, with every gradient."""

from __future__ import annotations

import torch
from torch import nn

import rnnkit as rk
from rnnkit.unroll import splits_its_step


class PlainCell(rk.CellBase):
    """h_t = tanh(LN(W_ih x_t + b) + W_hh h_{t-1}), c_t = c_{t-1} + h_t."""

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__(input_size, hidden_size)
        self.ih = nn.Linear(input_size, hidden_size)
        self.ln = nn.LayerNorm(hidden_size)
        self.hh = nn.Linear(hidden_size, hidden_size, bias=False)
        self.calls = 0

    @property
    def state_size(self) -> int:
        return 2

    def forward(self, x, state):
        self.calls += 1
        h, c = state
        h = torch.tanh(self.ln(self.ih(x)) + self.hh(h))
        return h, (h, c + h)

    def get_config(self):
        return {"input_size": self.input_size, "hidden_size": self.hidden_size}


class SplitCell(PlainCell):
    """The same cell with its step split: LN(W_ih x + b) for all steps at once."""

    def project_input(self, x):
        return self.ln(self.ih(x))  # (T, B, H), or (B, H) for one step

    def recurrent_step(self, xp, state):
        h, c = state
        h = torch.tanh(xp + self.hh(h))
        return h, (h, c + h)

    def forward(self, x, state):
        self.calls += 1
        return self.recurrent_step(self.project_input(x), state)


def test_split_step_equals_the_plain_step_padded_deep_and_bidirectional():
    torch.manual_seed(0)
    kw = dict(num_layers=2, bidirectional=True, batch_first=True)
    plain = rk.Recurrent(PlainCell(3, 4), **kw).double()
    split = rk.Recurrent(SplitCell(3, 4), **kw).double()
    split.load_state_dict(plain.state_dict())
    assert splits_its_step(split.cells[0]) and not splits_its_step(plain.cells[0])
    x = torch.randn(3, 6, 3, dtype=torch.float64, requires_grad=True)
    for lengths in (None, torch.tensor([6, 2, 5])):
        want, want_state = plain(x, lengths=lengths)
        got, got_state = split(x, lengths=lengths)
        torch.testing.assert_close(got, want, rtol=0, atol=1e-12)
        torch.testing.assert_close(got_state, want_state, rtol=0, atol=1e-12)
        grads_a = torch.autograd.grad(
            want.square().sum() + want_state[1].sum(), [x, *plain.parameters()]
        )
        grads_b = torch.autograd.grad(
            got.square().sum() + got_state[1].sum(), [x, *split.parameters()]
        )
        for a, b in zip(grads_a, grads_b, strict=True):
            torch.testing.assert_close(b, a, rtol=0, atol=1e-12)
    assert all(c.calls == 0 for c in split.cells)  # the loop never called forward


def test_trace_and_step_of_a_split_cell():
    torch.manual_seed(0)
    layer = rk.Recurrent(SplitCell(3, 4), batch_first=True).double()
    x = torch.randn(2, 5, 3, dtype=torch.float64)
    out, _ = layer(x)
    trace = layer.trace(x)
    torch.testing.assert_close(trace.output, out)
    torch.testing.assert_close(torch.stack(trace.hidden[0], 1), out)
    state = None
    for t in range(5):  # one step at a time (decoding) goes through forward
        y, state = layer.step(x[:, t], state)
        torch.testing.assert_close(y, out[:, t])
