"""The compiled sequence kernels (rnnkit.kernels.ext): equal to the Python kernels in
float64 (outputs, final states, every gradient), gradcheck, and the fallback.

Where a C++ compiler exists the extension must build: these tests fail rather than skip
when it does not, so that they cannot pass by running the Python kernels twice."""

import shutil
import warnings

import pytest
import torch

from rnnkit.kernels import elman_sequence, ext, gru_sequence, lstm_sequence
from rnnkit.kernels.common import Linear

T, B, H = 6, 4, 5
LENGTHS = {
    "none": None,
    "random": torch.tensor([3, 6, 1, 4]),  # valid rows not first: a general mask
    "sorted": torch.tensor([5, 3, 3, 1]),  # longest first: prefix rows; none valid at t=5
    "sorted_full": torch.tensor([6, 6, 2, 1]),
}
HAS_COMPILER = any(shutil.which(c) for c in ("c++", "g++", "clang++"))


@pytest.fixture(scope="module")
def ops():
    if not HAS_COMPILER:
        pytest.skip("no C++ compiler: the Python kernels run (tested by test_fallback_*)")
    assert ext.available(), f"the extension did not build: {ext.why_not()}"
    return ext.ops()


@pytest.fixture
def calls(monkeypatch):
    """Counts the kernel calls that the extension ran."""
    seen = []
    real = ext.use

    def spy(*tensors):
        found = real(*tensors)
        seen.append(found is not None)
        return found

    monkeypatch.setattr(ext, "use", spy)
    return seen


def mask_of(name):
    lengths = LENGTHS[name]
    if lengths is None:
        return None, 0
    return (torch.arange(T).unsqueeze(1) < lengths).unsqueeze(2), int(lengths.min())


def inputs(kind, bias=True, dtype=torch.float64, seed=0, batch=B):
    gen = torch.Generator().manual_seed(seed)
    g = {"lstm": 4, "gru": 3}.get(kind, 1)

    def leaf(*shape, scale=1.0):
        return (torch.randn(*shape, generator=gen, dtype=dtype) * scale).requires_grad_()

    args = [leaf(T, batch, g * H), leaf(batch, H)]
    if kind == "lstm":
        args.append(leaf(batch, H))
    args.append(leaf(g * H, H, scale=0.5))
    if kind == "gru":
        args.append(leaf(g * H) if bias else None)
    return args


def call(kind, args, mask, first):
    if kind == "lstm":
        return lstm_sequence(*args, mask, first)
    if kind == "gru":
        return gru_sequence(*args, mask, first)
    return elman_sequence(*args, kind.split("_")[1], mask, first)


def run(kind, args, mask, first, train):
    """Outputs and final states, and with ``train`` the gradients of a random loss."""
    with torch.set_grad_enabled(train):
        outs = call(kind, args, mask, first)
    if not train:
        return list(outs)
    gen = torch.Generator().manual_seed(1)
    loss = sum((o * torch.randn(o.shape, generator=gen, dtype=o.dtype)).sum() for o in outs)
    leaves = [a for a in args if a is not None]
    return [o.detach() for o in outs] + list(torch.autograd.grad(loss, leaves))


KINDS = ["rnn_tanh", "rnn_relu", "lstm", "gru", "gru_nobias"]


@pytest.mark.parametrize("train", [True, False], ids=["train", "infer"])
@pytest.mark.parametrize("lengths", list(LENGTHS))
@pytest.mark.parametrize("kind", KINDS)
def test_extension_equals_python_kernel(ops, calls, monkeypatch, kind, lengths, train):
    name = kind.removesuffix("_nobias")
    args = inputs(name, bias=not kind.endswith("_nobias"))
    mask, first = mask_of(lengths)
    fast = run(name, args, mask, first, train)
    assert calls and all(calls), "the compiled kernel did not run"
    monkeypatch.setenv("RNNKIT_EXT", "0")
    calls.clear()
    slow = run(name, args, mask, first, train)
    assert calls and not any(calls), "the Python kernel did not run"
    assert len(fast) == len(slow)
    for a, b in zip(fast, slow, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    if mask is not None:  # padded outputs are exactly zero
        assert not fast[0].masked_select(~mask).any()


@pytest.fixture
def two_threads():
    old = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(old)


#: a batch that two threads split into two blocks of rows (at least 16 rows each)
SPLIT_B = 37
SPLIT_LENGTHS = {
    "none": None,
    "sorted": torch.arange(SPLIT_B, 0, -1) * T // SPLIT_B + 1,  # 6 .. 1, longest first
    "random": torch.randint(1, T + 1, (SPLIT_B,), generator=torch.Generator().manual_seed(3)),
}


def step_rows(lengths):
    """rows[t]: the valid rows of step t in a batch sorted by decreasing length."""
    return [int((lengths > t).sum()) for t in range(T)]


def test_row_blocks_split_the_batch_between_threads(ops, two_threads):
    assert list(ops.row_blocks(SPLIT_B, [], T)) == [0, 19, SPLIT_B]  # 19 x 6 >= half of 37 x 6
    assert list(ops.row_blocks(31, [], T)) == [0, 31]  # under 16 rows a thread: one block
    lengths = SPLIT_LENGTHS["sorted"]
    cuts = list(ops.row_blocks(SPLIT_B, step_rows(lengths), T))
    assert len(cuts) == 3 and cuts[0] == 0 and cuts[2] == SPLIT_B
    first, second = int(lengths[: cuts[1]].sum()), int(lengths[cuts[1] :].sum())
    assert abs(first - second) <= T  # the valid steps balanced to within one row's
    assert cuts[1] < SPLIT_B // 2  # the longer rows come first: fewer of them
    torch.set_num_threads(1)
    assert list(ops.row_blocks(SPLIT_B, [], T)) == [0, SPLIT_B]


@pytest.mark.parametrize("train", [True, False], ids=["train", "infer"])
@pytest.mark.parametrize("lengths", list(SPLIT_LENGTHS))
@pytest.mark.parametrize("kind", KINDS)
def test_extension_in_row_blocks_equals_python_kernel(
    ops, calls, monkeypatch, two_threads, kind, lengths, train
):
    """Two threads, each running its block of rows through the whole sequence, give the
    Python kernel's outputs, states and gradients (padded and not)."""
    name = kind.removesuffix("_nobias")
    args = inputs(name, bias=not kind.endswith("_nobias"), batch=SPLIT_B)
    lens = SPLIT_LENGTHS[lengths]
    mask = None if lens is None else (torch.arange(T).unsqueeze(1) < lens).unsqueeze(2)
    first = 0 if lens is None else int(lens.min())
    fast = run(name, args, mask, first, train)
    assert calls and all(calls), "the compiled kernel did not run"
    monkeypatch.setenv("RNNKIT_EXT", "0")
    slow = run(name, args, mask, first, train)
    for a, b in zip(fast, slow, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("lengths", ["none", "random", "sorted"])
@pytest.mark.parametrize("kind", KINDS)
def test_extension_gradcheck(ops, calls, kind, lengths):
    name = kind.removesuffix("_nobias")
    args = inputs(name, bias=not kind.endswith("_nobias"))
    mask, first = mask_of(lengths)
    leaves = [a for a in args if a is not None]

    def fn(*leaf_args):
        it = iter(leaf_args)
        return call(name, [None if a is None else next(it) for a in args], mask, first)

    assert torch.autograd.gradcheck(fn, leaves, fast_mode=True)
    assert calls and all(calls)


@pytest.mark.parametrize("pack", [True, False], ids=["packed", "mm"])
@pytest.mark.parametrize("kind", ["rnn_tanh", "lstm", "gru"])
def test_extension_float32_equals_python_kernel(ops, monkeypatch, kind, pack):
    """float32 runs the products from C++ with oneDNN-packed weights (as Linear does in
    Python) for large enough weights and batches, else with mm."""
    monkeypatch.setattr(ext, "PACK_MIN_BATCH", 0 if pack else 10**9)
    monkeypatch.setattr(ext, "PACK_MIN_NUMEL", 0)
    args = inputs(kind, dtype=torch.float32)
    w = args[-2] if kind == "gru" else args[-1]
    assert (ext.packed(w.detach(), B) is not None) == (pack and Linear(w, B).packed is not None)
    mask, first = mask_of("sorted")
    fast = run(kind, args, mask, first, train=True)
    monkeypatch.setenv("RNNKIT_EXT", "0")
    slow = run(kind, args, mask, first, train=True)
    for a, b in zip(fast, slow, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_fallback_with_env_off(calls, monkeypatch):
    monkeypatch.setenv("RNNKIT_EXT", "0")
    assert ext.load() is None and not ext.available()
    assert ext.why_not() == "RNNKIT_EXT=0"
    args = inputs("lstm")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # turned off on purpose: no warning
        out = run("lstm", args, *mask_of("random"), train=True)
    assert calls and not any(calls)
    assert all(torch.isfinite(o).all() for o in out)


def test_fallback_when_the_build_fails(calls, monkeypatch):
    def broken():
        raise RuntimeError("no compiler here")

    monkeypatch.setattr(ext, "_state", {})
    monkeypatch.setattr(ext, "_build", broken)
    with pytest.warns(RuntimeWarning, match="no compiler here"):
        assert ext.load() is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once
        assert ext.load() is None
    assert "no compiler here" in ext.why_not()
    out = run("gru", inputs("gru"), *mask_of("sorted"), train=False)
    assert calls and not any(calls)
    assert all(torch.isfinite(o).all() for o in out)


def test_other_dtypes_use_python(ops, calls):
    args = [a.detach().to(torch.bfloat16) for a in inputs("rnn_tanh")]
    with torch.no_grad():
        elman_sequence(*args)
    assert calls == [False]


def test_a_stale_build_lock_is_removed_and_a_fresh_one_kept(tmp_path):
    import os
    import time

    from rnnkit.kernels import ext

    lock = tmp_path / "lock"
    assert not ext.clear_stale_lock(lock)  # none there
    lock.touch()
    assert not ext.clear_stale_lock(lock) and lock.exists()  # a build in progress
    old = time.time() - ext.STALE_LOCK_SECONDS - 5
    os.utime(lock, (old, old))
    assert ext.clear_stale_lock(lock) and not lock.exists()  # left by a killed build
