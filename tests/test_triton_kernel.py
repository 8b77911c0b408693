"""The Triton kernel of the torch backend, exact on a machine without a GPU (SPEC G2, P3, D5-D9).

Run in the Triton environment, with the interpreter (CPU tensors, the kernel's
own code path, no GPU)::

    TRITON_INTERPRET=1 PYTHONPATH=src python -m pytest tests/test_triton_kernel.py

Skipped where triton is not installed, or without ``TRITON_INTERPRET=1`` and
without a CUDA device. (Triton and TensorFlow abort when loaded in one process,
so this file imports neither TensorFlow nor anything that does.)
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("triton")

from dropout_ref.core.numerics import scaled_reference, ulp_distance  # noqa: E402
from dropout_ref.core.philox import numpy_keep_mask, numpy_words  # noqa: E402
from dropout_ref.core.thresholds import inverse_keep_scale, word_threshold  # noqa: E402
from dropout_ref.torch import dropout_layer  # noqa: E402
from dropout_ref.torch.fast import triton_kernel  # noqa: E402

if triton_kernel.interpreting():
    DEVICE = "cpu"
elif torch.cuda.is_available():
    DEVICE = "cuda"
else:
    pytest.skip("needs TRITON_INTERPRET=1 or a CUDA device", allow_module_level=True)


@pytest.fixture(autouse=True)
def through_the_kernel():
    """Route this device's tensors through the kernel (the interpreter runs it on the CPU)."""
    if DEVICE == "cpu":
        with triton_kernel.interpret_on_cpu():
            yield
    else:
        yield


def nonzero_values(n: int, seed: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Values with no zero (so ``out != 0`` is the keep mask), on ``DEVICE``."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(n) * 3
    x[np.abs(x) < 1e-3] = 1.0
    return torch.from_numpy(x).to(dtype=dtype, device=DEVICE)


SEEDS = [0, 1, 20240611, 2**32 + 7, 2**64 - 1]


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("first_block", [0, 5, 2**32 - 300])
def test_p3_tl_randint4x_is_the_oracle_generator(seed, first_block):
    """P3, independent oracle: Triton's tl.randint4x(seed, c) gives our four words of block c
    (counters below 2**32, c1 = 0)."""
    n_blocks = 257
    words = triton_kernel.words(n_blocks, seed, first_block, device=DEVICE).cpu().numpy()
    expected = numpy_words((4 * n_blocks,), seed, 4 * first_block).reshape(n_blocks, 4)
    np.testing.assert_array_equal(words, expected.astype(np.int64))


# Sizes with every tail modulo 4 and modulo the kernel's 4 * BLOCK slots; offsets with every
# lane, and counters that carry into c1 inside the call.
SIZES = [1, 2, 3, 4, 5, 4095, 4096, 4099, 9001]
OFFSETS = [0, 1, 2, 3, 4 * (2**32 - 2) + 1, 2**62 + 6]


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("offset", OFFSETS)
def test_p2_p3_kernel_mask_bit_for_bit_with_the_numpy_oracle(size, offset):
    """P2/P3/P4: the kernel keeps exactly the oracle's elements (layout v2, all four words)."""
    seed = 2**64 - 1 - size
    x = nonzero_values(size, size)
    threshold = word_threshold(0.3)
    out = triton_kernel.dropout(x, threshold, inverse_keep_scale(0.3), seed=seed, offset=offset)
    keep = numpy_keep_mask((size,), threshold, seed, offset)
    np.testing.assert_array_equal(out.cpu().numpy() != 0, keep)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
@pytest.mark.parametrize("rate", [0.1, 0.5, 1 / 3, 0.9])
def test_d5_kernel_scale_within_one_ulp_and_equal_to_the_torch_path(dtype, rate):
    """D5: kept elements are within 1 ulp of X / (1 - p) in X's dtype (float32 product for 16-bit
    X, float64 for float64), and equal bit for bit to the exact torch-ops path."""
    x = nonzero_values(4099, 7, dtype)
    out = dropout_layer(x, rate, seed=11, offset=3)
    with NoKernel():
        reference_path = dropout_layer(x.cpu(), rate, seed=11, offset=3)
    assert out.dtype == dtype and out.shape == x.shape and out.device == x.device
    assert torch.equal(out.cpu(), reference_path)
    name = str(dtype).removeprefix("torch.")
    host = x.cpu().double().numpy()
    got = out.cpu().double().numpy()
    keep = numpy_keep_mask(x.shape, word_threshold(rate), 11, 3)
    np.testing.assert_array_equal(got != 0, keep)
    distance = ulp_distance(got[keep], scaled_reference(host[keep], rate, name), name)
    assert distance.max() <= 1.0


class NoKernel:
    """Run the exact torch-ops path for CPU tensors (the reference of the kernel)."""

    def __enter__(self):
        self._saved = triton_kernel._cpu_interpretation
        triton_kernel._cpu_interpretation = False

    def __exit__(self, *exc):
        triton_kernel._cpu_interpretation = self._saved


def test_d6_dropped_are_positive_zero_even_for_nan_and_inf():
    """D6: a select, not a product: dropped NaN, inf and negative X give +0.0; kept NaN stays."""
    x = nonzero_values(4099, 3)
    x[::5] = float("nan")
    x[1::5] = float("inf")
    x[2::5] = -float("inf")
    out = dropout_layer(x, 0.5, seed=5).cpu()
    keep = torch.from_numpy(numpy_keep_mask(x.shape, word_threshold(0.5), 5, 0))
    assert torch.equal(out[~keep], torch.zeros(int((~keep).sum())))
    assert not torch.signbit(out[~keep]).any()
    assert torch.isnan(out[keep]).any() and torch.isinf(out[keep]).any()


def test_d3_d4_threshold_two_to_the_32_drops_everything():
    """D4 at the top of the range: threshold 2**32 (p within 2**-33 of 1) keeps nothing; the
    compare is unsigned 64-bit, not a wrapped 32-bit one."""
    rate = 1 - 2.0**-40
    assert word_threshold(rate) == 2**32
    out = dropout_layer(nonzero_values(999, 1), rate, seed=9)
    assert torch.equal(out.cpu(), torch.zeros(999))
    everything = triton_kernel.dropout(nonzero_values(99, 1), 0, 1.0, seed=9)
    assert torch.equal(everything.cpu(), nonzero_values(99, 1).cpu())


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_d8_gradient_recomputes_the_same_mask_and_saves_nothing(dtype):
    """D8: d(sum(out * G))/dX = keep * G / (1 - p) with the forward's mask; the kernel's backward
    recomputes it from (key, counters), so autograd saves no tensor (G3)."""
    x = nonzero_values(3001, 2, dtype).requires_grad_(True)
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        out = dropout_layer(x, 0.4, seed=2**40 + 1, offset=6)
    assert saved == []
    g = nonzero_values(3001, 4, dtype)
    out.backward(g)
    keep = torch.from_numpy(numpy_keep_mask(x.shape, word_threshold(0.4), 2**40 + 1, 6))
    expected = dropout_layer(g.detach(), 0.4, seed=2**40 + 1, offset=6)
    assert torch.equal(x.grad, expected)
    assert torch.equal(x.grad.cpu() != 0, keep)


def test_d9_default_mode_uses_the_kernel_with_a_key_from_torchs_generator():
    """D9: the default mode draws its key from torch's generator of X's device on each call:
    torch.manual_seed reproduces it, consecutive calls differ; the mask is the Philox stream of
    that key (D4), and backward reuses the saved 8-byte key (D8)."""
    from dropout_ref.torch.fast import custom_ops

    x = nonzero_values(5000, 8).requires_grad_(True)
    torch.manual_seed(3)
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        first = dropout_layer(x, 0.5)
    assert [(t.numel(), t.dtype) for t in saved] == [(1, torch.int64)]  # the key, no mask
    torch.manual_seed(3)
    key = custom_ops.draw_key(x.device)
    again = dropout_layer(x, 0.5)  # the generator has moved on: a fresh mask
    assert not torch.equal(first, again)
    keep = numpy_keep_mask(x.shape, word_threshold(0.5), int(key.item()), 0)
    np.testing.assert_array_equal(first.detach().cpu().numpy() != 0, keep)
    first.backward(torch.ones_like(first))
    assert torch.equal(x.grad.cpu() != 0, torch.from_numpy(keep))
    # Keep count: two-sided binomial interval with false-alarm probability 1e-6.
    from dropout_ref.conformance.stats import binomial_count_interval

    assert int(keep.sum()) in binomial_count_interval(5000, 0.5, 1e-6)


def test_d9_default_mode_without_autograd_runs_the_kernel_on_the_key():
    """D4/D9 on the no-grad fast path (the kernel called without the operator dispatch)."""
    from dropout_ref.torch.fast import custom_ops

    x = nonzero_values(4097, 9)
    torch.manual_seed(21)
    out = dropout_layer(x, 0.3)
    torch.manual_seed(21)
    key = int(custom_ops.draw_key(x.device).item())
    keep = numpy_keep_mask(x.shape, word_threshold(0.3), key, 0)
    np.testing.assert_array_equal(out.cpu().numpy() != 0, keep)


def test_gpu_masks_script_passes_and_catches_a_wrong_kernel(monkeypatch, capsys):
    """benchmarks/gpu_masks.py (run by benchmarks/gpu_check.sh on a GPU): its checks pass on
    the kernel and fail when the kernel drops one element too many."""
    import importlib.util
    import pathlib

    path = pathlib.Path(__file__).parents[1] / "benchmarks" / "gpu_masks.py"
    spec = importlib.util.spec_from_file_location("gpu_masks", path)
    gpu_masks = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gpu_masks)
    monkeypatch.setattr(gpu_masks, "SIZES", (5, 4099))
    assert gpu_masks.main(["--device", DEVICE]) == 0
    assert "4/4 checks passed" in capsys.readouterr().out
    original = triton_kernel.dropout

    def one_wrong(x, *args, **kwargs):
        out = original(x, *args, **kwargs)
        out.view(-1)[-1] = 0.0
        return out

    monkeypatch.setattr(triton_kernel, "dropout", one_wrong)
    assert gpu_masks.main(["--device", DEVICE]) == 1
    assert "FAIL" in capsys.readouterr().out


@pytest.mark.slow
def test_g1_compiled_graph_calls_the_kernel_in_both_modes(monkeypatch):
    """G1 on the kernel's route: under torch.compile(fullgraph=True) the default mode draws its
    key in the graph and calls keyed_dropout, the seed mode philox_dropout; forward and
    backward agree with the oracle, and the seed mode equals eager bit for bit."""
    calls = []
    original = triton_kernel.dropout
    monkeypatch.setattr(triton_kernel, "dropout",
                        lambda *a, **k: calls.append(sorted(k)) or original(*a, **k))
    x = nonzero_values(1001, 12).requires_grad_(True)
    seeded = torch.compile(lambda t: dropout_layer(t, 0.4, seed=99, offset=3), fullgraph=True)
    out = seeded(x)
    out.backward(torch.ones_like(out))
    keep = numpy_keep_mask(x.shape, word_threshold(0.4), 99, 3)
    np.testing.assert_array_equal(out.detach().cpu().numpy() != 0, keep)
    assert torch.equal(out.detach(), dropout_layer(x.detach(), 0.4, seed=99, offset=3))
    assert torch.equal(x.grad.cpu() != 0, torch.from_numpy(keep))
    assert calls and all("seed" in c for c in calls)  # forward and backward: the kernel
    calls.clear()
    x.grad = None
    default = torch.compile(lambda t: dropout_layer(t, 0.4), fullgraph=True)
    out = default(x)
    out.backward(torch.ones_like(out))
    kept = out.detach() != 0
    assert torch.equal(x.grad != 0, kept)
    assert len(calls) == 2 and all("key" in c for c in calls)
    # Keep count: two-sided binomial interval, false-alarm probability 1e-6.
    from dropout_ref.conformance.stats import binomial_count_interval

    assert int(kept.sum()) in binomial_count_interval(1001, 0.6, 1e-6)


def test_g1_vmap_on_the_kernel_route():
    """torch.vmap through the keyed and seeded operators' vmap rules: "same" randomness
    gives one mask, "different" one per batch element, seed= the per-slice call's mask."""
    x = torch.ones(3, 257, device=DEVICE)
    same = torch.vmap(lambda r: dropout_layer(r, 0.5), randomness="same")(x)
    assert torch.equal(same[0], same[1]) and torch.equal(same[1], same[2])
    different = torch.vmap(lambda r: dropout_layer(r, 0.5), randomness="different")(x)
    assert not torch.equal(different[0], different[1])
    seeded = torch.vmap(lambda r: dropout_layer(r, 0.5, seed=8, offset=1))(x)
    keep = numpy_keep_mask((257,), word_threshold(0.5), 8, 1)
    for row in seeded:
        np.testing.assert_array_equal(row.cpu().numpy() != 0, keep)
