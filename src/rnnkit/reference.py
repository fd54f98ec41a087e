r"""The textbook: Elman RNN, LSTM and GRU in float64 NumPy, forward and BPTT written by hand.

This module is the oracle the rest of rnnkit is tested against. It runs one unbatched sequence
``xs`` (T, I) through a recurrent cell, puts an output layer on every step and sums the softmax
cross-entropy over time, as min-char-rnn does; then it backpropagates through time by hand.

Equations (``x_t`` input, ``h_t`` hidden state, ``c_t`` LSTM cell state, ``σ`` the logistic
sigmoid, ``*`` the elementwise product); every step first computes the two projections

    gx_t = W_ih x_t + b_ih        (G*H,)     gh_t = W_hh h_{t-1} + b_hh     (G*H,)

and then, per cell (``G`` is the number of gates; gate order as torch.nn):

    rnn_tanh (G=1):  h_t = tanh(gx_t + gh_t)
    rnn_relu (G=1):  h_t = relu(gx_t + gh_t)
    lstm     (G=4):  i, f, g, o = σ(gx_i + gh_i), σ(gx_f + gh_f), tanh(gx_g + gh_g), σ(gx_o + gh_o)
                     c_t = f * c_{t-1} + i * g
                     h_t = o * tanh(c_t)
    gru      (G=3):  r = σ(gx_r + gh_r)
                     z = σ(gx_z + gh_z)
                     n = tanh(gx_n + r * gh_n)
                     h_t = (1 - z) * n + z * h_{t-1}

    output, every step:  y_t = W_y h_t + b_y,   p_t = softmax(y_t)
    loss:                L = -Σ_t log p_t[target_t]

Parameters (a dict of float64 arrays, named and laid out as torch.nn's cells, so a float64
``cell.load_state_dict({k: torch.from_numpy(v) ...})`` gives the same function):

    weight_ih (G*H, I)   weight_hh (G*H, H)   bias_ih (G*H,)   bias_hh (G*H,)
    W_y (V, H)           b_y (V,)

The state is ``h0`` (H,) for rnn_tanh, rnn_relu and gru, and ``(h0, c0)`` for lstm.
"""

import numpy as np

# Number of gates G stacked in weight_ih / weight_hh for each cell kind.
GATES = {"rnn_tanh": 1, "rnn_relu": 1, "lstm": 4, "gru": 3}


def sigmoid(v):
    """σ(v) = 1 / (1 + exp(-v))."""
    return 1.0 / (1.0 + np.exp(-v))


def init_params(cell, input_size, hidden_size, output_size, rng):
    """Random float64 parameters drawn as torch.nn draws them: U(-1/√H, 1/√H).

    >>> p = init_params("lstm", 3, 4, 5, np.random.default_rng(0))
    >>> p["weight_ih"].shape, p["weight_hh"].shape, p["W_y"].shape
    ((16, 3), (16, 4), (5, 4))
    """
    G, H, k = _gates(cell), hidden_size, 1.0 / np.sqrt(hidden_size)
    shapes = {
        "weight_ih": (G * H, input_size),
        "weight_hh": (G * H, H),
        "bias_ih": (G * H,),
        "bias_hh": (G * H,),
        "W_y": (output_size, H),
        "b_y": (output_size,),
    }
    return {name: rng.uniform(-k, k, shape) for name, shape in shapes.items()}


def forward(cell, params, xs, state0):
    """Run the cell over ``xs`` (T, I); return ``(hs, state)`` like torch.nn.RNN/LSTM/GRU.

    ``hs`` (T, H) holds h_1..h_T; ``state`` is h_T, or (h_T, c_T) for lstm.
    """
    hs, state, _ = _unroll(cell, params, xs, state0)
    return hs, state


def loss_and_grads(cell, params, xs, targets, state0):
    """Loss L = -Σ_t log softmax(W_y h_t + b_y)[targets[t]] and its gradients, by hand.

    Args:
        cell: "rnn_tanh", "rnn_relu", "lstm" or "gru".
        params: dict of float64 arrays, see the module docstring.
        xs: (T, I) float64 inputs.
        targets: (T,) integer classes in [0, V).
        state0: h0 (H,), or (h0, c0) for lstm.

    Returns:
        ``(loss, grads)``: a float and a dict holding dL/d of every parameter (same names and
        shapes), ``"xs"`` (T, I), ``"h0"`` (H,) and, for lstm, ``"c0"`` (H,).
    """
    hs, _, caches = _unroll(cell, params, xs, state0)
    W_y, b_y = params["W_y"], params["b_y"]
    grads = {name: np.zeros_like(value) for name, value in params.items()}
    dxs = np.zeros_like(xs)
    loss = 0.0
    dh_next = np.zeros(hs.shape[1])  # dL/dh_t flowing back from step t+1
    dc_next = np.zeros(hs.shape[1])  # dL/dc_t flowing back from step t+1 (lstm only)
    for t in reversed(range(len(xs))):
        # y_t = W_y h_t + b_y
        y = W_y @ hs[t] + b_y
        # p_t = softmax(y_t), shifted by max(y_t) for stability
        p = np.exp(y - y.max())
        p /= p.sum()
        # L += -log p_t[target_t]
        loss -= np.log(p[targets[t]])
        # dL/dy_t = p_t - onehot(target_t)
        dy = p.copy()
        dy[targets[t]] -= 1.0
        # dL/dW_y += dy_t h_tᵀ ;  dL/db_y += dy_t
        grads["W_y"] += np.outer(dy, hs[t])
        grads["b_y"] += dy
        # dL/dh_t = W_yᵀ dy_t + (what h_{t+1} sends back)
        dh = W_y.T @ dy + dh_next
        # through the cell: dL/dx_t, dL/dh_{t-1}, dL/dc_{t-1}; weight gradients accumulate
        dxs[t], dh_next, dc_next = _BACKWARD[cell](params, grads, caches[t], dh, dc_next)
    grads["xs"] = dxs
    grads["h0"] = dh_next
    if cell == "lstm":
        grads["c0"] = dc_next
    return float(loss), grads


def _gates(cell):
    """G for ``cell``, or a ValueError naming it."""
    if cell not in GATES:
        raise ValueError(f"cell must be one of {sorted(GATES)}, got {cell!r}")
    return GATES[cell]


def _unroll(cell, params, xs, state0):
    """Step the cell over time; return hs (T, H), the final state and each step's cache."""
    _gates(cell)
    if xs.ndim != 2 or xs.shape[1] != params["weight_ih"].shape[1]:
        raise ValueError(f"xs must have shape (T, {params['weight_ih'].shape[1]}), got {xs.shape}")
    h, c = state0 if cell == "lstm" else (state0, None)
    hs, caches = [], []
    for x in xs:
        # one step: h_t (and c_t) from x_t and h_{t-1} (and c_{t-1})
        h, c, cache = _FORWARD[cell](params, x, h, c)
        hs.append(h)
        caches.append(cache)
    state = (h, c) if cell == "lstm" else h
    return np.array(hs), state, caches


def _projections(p, x, h):
    """gx_t = W_ih x_t + b_ih and gh_t = W_hh h_{t-1} + b_hh, each (G*H,)."""
    return p["weight_ih"] @ x + p["bias_ih"], p["weight_hh"] @ h + p["bias_hh"]


def _projections_back(p, grads, x, h, dgx, dgh):
    """Backward through _projections given dL/dgx_t, dL/dgh_t; return (dL/dx_t, dL/dh_{t-1})."""
    # dL/dW_ih += dgx x_tᵀ ;  dL/db_ih += dgx
    grads["weight_ih"] += np.outer(dgx, x)
    grads["bias_ih"] += dgx
    # dL/dW_hh += dgh h_{t-1}ᵀ ;  dL/db_hh += dgh
    grads["weight_hh"] += np.outer(dgh, h)
    grads["bias_hh"] += dgh
    # dL/dx_t = W_ihᵀ dgx ;  dL/dh_{t-1} (through the projection) = W_hhᵀ dgh
    return p["weight_ih"].T @ dgx, p["weight_hh"].T @ dgh


def _elman_forward(p, x, h, c, relu):
    gx, gh = _projections(p, x, h)
    # h_t = tanh(gx_t + gh_t)  or  relu(gx_t + gh_t)
    pre = gx + gh
    h_new = np.maximum(pre, 0.0) if relu else np.tanh(pre)
    return h_new, None, (x, h, pre, h_new)


def _elman_backward(p, grads, cache, dh, dc, relu):
    x, h, pre, h_new = cache
    # dL/dpre = dh * relu'(pre) = dh * [pre > 0]   or   dh * tanh' = dh * (1 - h_t²)
    dpre = dh * (pre > 0) if relu else dh * (1.0 - h_new**2)
    # gx_t and gh_t enter as a sum, so both receive dpre
    dx, dh_prev = _projections_back(p, grads, x, h, dpre, dpre)
    return dx, dh_prev, None


def _lstm_forward(p, x, h, c):
    gx, gh = _projections(p, x, h)
    # i, f, g, o = σ(·), σ(·), tanh(·), σ(·) of the four H-sized slices of gx_t + gh_t
    ai, af, ag, ao = np.split(gx + gh, 4)
    i, f, g, o = sigmoid(ai), sigmoid(af), np.tanh(ag), sigmoid(ao)
    # c_t = f * c_{t-1} + i * g
    c_new = f * c + i * g
    # h_t = o * tanh(c_t)
    tc = np.tanh(c_new)
    h_new = o * tc
    return h_new, c_new, (x, h, c, i, f, g, o, tc)


def _lstm_backward(p, grads, cache, dh, dc_next):
    x, h, c, i, f, g, o, tc = cache
    # h_t = o * tanh(c_t)  =>  dL/do = dh * tanh(c_t)
    do = dh * tc
    # dL/dc_t = (from c_{t+1}) + dh * o * (1 - tanh²(c_t))
    dc = dc_next + dh * o * (1.0 - tc**2)
    # c_t = f * c_{t-1} + i * g  =>  dL/df = dc * c_{t-1}, dL/di = dc * g, dL/dg = dc * i
    df, di, dg = dc * c, dc * g, dc * i
    # dL/dc_{t-1} = dc * f
    dc_prev = dc * f
    # through the nonlinearities: σ' = σ(1 - σ), tanh' = 1 - tanh²
    dpre = np.concatenate([di * i * (1 - i), df * f * (1 - f), dg * (1 - g**2), do * o * (1 - o)])
    # gx_t and gh_t enter as a sum, so both receive dpre
    dx, dh_prev = _projections_back(p, grads, x, h, dpre, dpre)
    return dx, dh_prev, dc_prev


def _gru_forward(p, x, h, c):
    gx, gh = _projections(p, x, h)
    gx_r, gx_z, gx_n = np.split(gx, 3)
    gh_r, gh_z, gh_n = np.split(gh, 3)
    # r = σ(gx_r + gh_r)
    r = sigmoid(gx_r + gh_r)
    # z = σ(gx_z + gh_z)
    z = sigmoid(gx_z + gh_z)
    # n = tanh(gx_n + r * gh_n)
    n = np.tanh(gx_n + r * gh_n)
    # h_t = (1 - z) * n + z * h_{t-1}
    h_new = (1 - z) * n + z * h
    return h_new, None, (x, h, r, z, n, gh_n)


def _gru_backward(p, grads, cache, dh, dc):
    x, h, r, z, n, gh_n = cache
    # h_t = (1 - z) * n + z * h_{t-1}  =>  dL/dn = dh * (1 - z), dL/dz = dh * (h_{t-1} - n)
    dn, dz = dh * (1 - z), dh * (h - n)
    # n = tanh(gx_n + r * gh_n)  =>  dL/d(gx_n + r * gh_n) = dn * (1 - n²)
    dn_pre = dn * (1 - n**2)
    # dL/dr = dn_pre * gh_n ;  dL/dgh_n = dn_pre * r
    dr, dgh_n = dn_pre * gh_n, dn_pre * r
    # through σ: σ' = σ(1 - σ)
    dr_pre, dz_pre = dr * r * (1 - r), dz * z * (1 - z)
    # dL/dgx_t = [dr_pre, dz_pre, dn_pre] ;  dL/dgh_t = [dr_pre, dz_pre, dn_pre * r]
    dgx = np.concatenate([dr_pre, dz_pre, dn_pre])
    dgh = np.concatenate([dr_pre, dz_pre, dgh_n])
    dx, dh_proj = _projections_back(p, grads, x, h, dgx, dgh)
    # dL/dh_{t-1} = (through the projection) + dh * z  (the direct path of h_t = ... + z * h_{t-1})
    return dx, dh_proj + dh * z, None


# One forward and one backward step per cell kind.
_FORWARD = {
    "rnn_tanh": lambda p, x, h, c: _elman_forward(p, x, h, c, relu=False),
    "rnn_relu": lambda p, x, h, c: _elman_forward(p, x, h, c, relu=True),
    "lstm": _lstm_forward,
    "gru": _gru_forward,
}
_BACKWARD = {
    "rnn_tanh": lambda p, g, cache, dh, dc: _elman_backward(p, g, cache, dh, dc, relu=False),
    "rnn_relu": lambda p, g, cache, dh, dc: _elman_backward(p, g, cache, dh, dc, relu=True),
    "lstm": _lstm_backward,
    "gru": _gru_backward,
}
