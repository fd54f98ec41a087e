r"""Whole-sequence kernels for the built-in cells, with hand-written backpropagation
through time.

Each kernel runs the recurrence of one cell over all T steps given the projected inputs
``xp`` (T, B, G*H), computed outside by autograd (``cell.project_input``), so that the
gradient it returns for ``xp`` reaches ``W_ih``, ``b_ih`` and the inputs through one
matrix product. Inside, nothing builds an autograd graph: the forward pass fills
preallocated buffers with in-place operations and keeps what the backward pass needs
(gate activations, states); the backward pass walks time in reverse, computing at each
step the gradient of the pre-activations ``dA_t`` and ``dh_{t-1} = dA_t W_hh``, and
forms ``dW_hh = sum_t dA_t^T h_{t-1}`` with one matrix product over all steps.

Masks follow :func:`rnnkit.unroll.run_loop`: where ``mask`` (T, B, 1) is false the
output is zero and the state is carried unchanged,

.. math::
    s_t = m_t \odot \mathrm{cell}(xp_t, s_{t-1}) + (1 - m_t) \odot s_{t-1}, \qquad
    y_t = m_t \odot h_t,

so the backward pass sends ``m_t`` of the state gradient into the step and carries
``1 - m_t`` of it to ``s_{t-1}``. Steps before ``first_masked`` are all valid.

Without autograd (inference) the kernels keep nothing for backward: the GRU reuses one
row of gates, the LSTM carries ``2c`` to spend fewer operations a step, and
:func:`project` computes ``xp`` through oneDNN too. On CPU in float32 the per-step
products use oneDNN with the weight packed once per sequence (:class:`Linear`);
elsewhere they use ``addmm``. Every tanh in a forward pass is ``2 sigmoid(2x) - 1``
(torch's CPU tanh is several times slower than its sigmoid). Shapes: T steps, B batch,
H hidden, G gates.

On CPU in float32 and float64 the same kernels run compiled (:mod:`rnnkit.kernels.ext`,
``csrc/fused.cpp``): the C++ walks time itself, with one product and one fused,
vectorized element-wise loop per step, and keeps the masking rules above (padded rows
carry their state and output zero; with the valid rows first, a step's products cover
those rows only). The Python code here is their reference and their fallback. Padded
inference runs them in the packed layout (:mod:`rnnkit.kernels.packed`): only the valid
positions are projected, stepped and written.

The hand-written backward passes run without a graph; asked for one (double backward,
``create_graph=True``) each kernel recomputes its recurrence with autograd instead
(:mod:`rnnkit.kernels.twice`).
"""

from rnnkit.kernels.common import project
from rnnkit.kernels.elman import elman_sequence
from rnnkit.kernels.gru import gru_sequence
from rnnkit.kernels.lstm import lstm_sequence

__all__ = ["elman_sequence", "gru_sequence", "lstm_sequence", "project"]
