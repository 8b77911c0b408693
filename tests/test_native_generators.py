"""Portable masks drawn at each framework's own speed give exactly SPEC P3's words.

TensorFlow draws them with its own stateless Philox kernel
(``StatelessRandomUniformFullIntV2``, :mod:`dropout_ref.tensorflow.native`), eagerly,
in graphs and under XLA, with Python or run-time seeds and offsets (S2); torch on
the CPU runs the compiled numba kernel on the tensor's own memory inside its
``philox_dropout`` custom operator (:mod:`dropout_ref.torch.fast.cpu_kernel`). Both
are checked against the NumPy oracle bit for bit where P3 is easiest to get wrong:
every offset mod 4, offsets near 2**64, counters carrying from c0 into c1, sizes not a
multiple of 4, 0-d and empty arrays, every float dtype, p at 0, 1 and within 2**-32
of 1, and the D8 gradient. JAX's ``rng_bit_generator`` is checked for the reason it
cannot serve (its Philox counter carries the key in its high words).
"""

from __future__ import annotations

import numpy as np
import pytest

from dropout_ref.core.philox import numpy_keep_mask, numpy_philox4x32_10, numpy_words
from dropout_ref.core.thresholds import inverse_keep_scale, word_threshold
from dropout_ref.numpy import dropout_layer as numpy_dropout

#: (seed, offset, size): every offset mod 4, sizes not multiples of 4, block counters
#: carrying from c0 into c1 inside one call, the top of the counter space, 0-d and empty.
CASES = [
    (1, 0, 10),
    (2**64 - 1, 1, 7),
    (5, 2, 33),
    (9, 3, 1),
    (7, 4 * (2**32 - 2) + 1, 37),  # blocks 2**32 - 2 .. 2**32 + 7: c1 becomes 1
    (2**63 + 11, 2**64 - 41, 41),  # the last 41 counters
    (3, 2**40 + 2, 0),
    (2**32, 6 * 2**40 + 3, 4099),
]
SHAPES = [(), (0,), (3, 0), (5,), (3, 7), (2, 3, 5)]
FLOAT_DTYPES = ["float16", "bfloat16", "float32", "float64"]


def values(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """Nonzero float32 values with NaN and +-inf, so ``out == 0`` means dropped (D6)."""
    x = np.random.default_rng(seed).standard_normal(int(np.prod(shape))).astype(np.float32)
    x[x == 0] = 1.0
    x[::7] = np.nan
    x[1::7] = np.inf
    x[2::7] = -np.inf
    return x.reshape(shape)


# --------------------------------------------------------------------------- TensorFlow


@pytest.fixture(scope="module")
def tf():
    return pytest.importorskip("tensorflow")


@pytest.mark.parametrize(("seed", "offset", "size"), CASES)
def test_p3_tensorflow_native_words_are_the_oracle_words(tf, seed, offset, size):
    """P3: TensorFlow's stateless kernel gives the oracle's words from any offset."""
    from dropout_ref.tensorflow import native

    got = native.words(size, seed, offset).numpy()
    np.testing.assert_array_equal(got, numpy_words((size,), seed, offset).astype(np.uint32))


@pytest.mark.parametrize(("seed", "offset", "size"), CASES)
@pytest.mark.parametrize("jit", [False, True])
def test_s2_tensorflow_runtime_words_equal_the_eager_words(tf, seed, offset, size, jit):
    """S2: seed and offset as int64 tensors (bits: seeds >= 2**63 negative) in one program."""
    from dropout_ref.core.validation import int64_bits
    from dropout_ref.tensorflow import native

    draw = tf.function(lambda s, o: native.runtime_words(size, s, o), jit_compile=jit)
    got = draw(tf.constant(int64_bits(seed), tf.int64), tf.constant(int64_bits(offset), tf.int64))
    np.testing.assert_array_equal(
        got.numpy(), numpy_words((size,), seed, offset).astype(np.uint32)
    )


def test_s2_tensorflow_runtime_words_one_program_for_every_seed_and_offset(tf):
    """S2: new seeds and offsets (every lane) reuse the traced program."""
    from dropout_ref.tensorflow import native

    draw = tf.function(lambda s, o: native.runtime_words(13, s, o), jit_compile=True)
    for seed, offset in [(1, 0), (2, 1), (3, 6), (2**40, 2**41 + 3)]:
        got = draw(tf.constant(seed, tf.int64), tf.constant(offset, tf.int64))
        np.testing.assert_array_equal(got.numpy(), numpy_words((13,), seed, offset))
    assert draw.experimental_get_tracing_count() == 1


def _spy_native_draws(monkeypatch) -> list:
    from dropout_ref.tensorflow import native

    calls = []
    original = native._draw
    monkeypatch.setattr(native, "_draw", lambda *a: calls.append(a[0]) or original(*a))
    return calls


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("offset", [0, 1, 2, 3, 2**64 - 2**10])
def test_p2_tensorflow_eager_seed_mode_takes_the_native_kernel(tf, monkeypatch, shape, offset):
    """P2: eager seed= calls below the fused size are the oracle's, drawn by the kernel."""
    from dropout_ref.tensorflow import dropout_layer

    calls = _spy_native_draws(monkeypatch)
    x = values(shape)
    got = dropout_layer(tf.constant(x), 0.3, seed=2**63 + 5, offset=offset)
    expected = numpy_dropout(x, 0.3, seed=2**63 + 5, offset=offset)
    np.testing.assert_array_equal(got.numpy(), expected)
    assert calls == [x.size + offset % 4]


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_d5_d7_tensorflow_native_path_every_float_dtype(tf, dtype):
    """D5/D7: each dtype keeps the oracle's mask, the scale rounded once, X's dtype."""
    from dropout_ref.tensorflow import dropout_layer

    x = values((4099,))
    X = tf.cast(tf.constant(x), dtype)
    got = dropout_layer(X, 0.25, seed=17, offset=3)
    assert got.dtype == X.dtype and got.shape == X.shape
    keep = numpy_keep_mask(x.shape, word_threshold(0.25), 17, 3)
    got32 = tf.cast(got, tf.float32).numpy()
    np.testing.assert_array_equal(got32 != 0, keep & (x != 0))
    scaled = tf.cast(tf.cast(X, tf.float64 if dtype == "float64" else tf.float32)
                     * inverse_keep_scale(0.25), X.dtype)
    np.testing.assert_array_equal(got32[keep], tf.cast(scaled, tf.float32).numpy()[keep])


@pytest.mark.parametrize("rate", [0.0, 1.0, 1.0 - 2.0**-40])
def test_d2_d3_tensorflow_native_path_edge_rates(tf, rate):
    """D2: p = 0 returns X; D3 and a threshold of 2**32 (p within 2**-32 of 1) drop all."""
    from dropout_ref.tensorflow import dropout_layer

    x = values((1001,))
    got = dropout_layer(tf.constant(x), rate, seed=4, offset=1).numpy()
    np.testing.assert_array_equal(got, numpy_dropout(x, rate, seed=4, offset=1))
    if rate:
        assert not np.any(got) and not np.signbit(got).any()


@pytest.mark.parametrize("jit", [False, True])
def test_s2_p2_tensorflow_runtime_seed_dropout_equals_eager(tf, jit):
    """S2: dropout with int64 seed/offset tensors in tf.function/XLA equals the eager call."""
    from dropout_ref.tensorflow import dropout_layer

    x = values((5, 19))
    step = tf.function(lambda X, s, o: dropout_layer(X, 0.4, seed=s, offset=o), jit_compile=jit)
    for seed, offset in [(3, 0), (2**64 - 3, 5), (11, 4 * (2**32 - 2) + 2)]:
        bits = seed - 2**64 if seed >= 2**63 else seed
        got = step(tf.constant(x), tf.constant(bits, tf.int64), tf.constant(offset, tf.int64))
        eager = dropout_layer(tf.constant(x), 0.4, seed=seed, offset=offset)
        np.testing.assert_array_equal(got.numpy(), eager.numpy())
        np.testing.assert_array_equal(eager.numpy(), numpy_dropout(x, 0.4, seed=seed,
                                                                   offset=offset))


@pytest.mark.parametrize("jit", [False, True])
def test_d4_s1_tensorflow_runtime_rate_keeps_a_word_equal_to_the_threshold(tf, jit):
    """D4 (kept iff w >= ceil(p * 2**32)) with a run-time rate, seed and offset: at
    p = w / 2**32 for a word w of the call, that element is kept and the mask is the
    oracle's. A strict comparison would drop it (this is the only value that tells them
    apart; random rates meet it with probability about 2**-32)."""
    from dropout_ref.tensorflow import dropout_layer

    seed, offset, n = 21, 6, 64
    words = numpy_words((n,), seed, offset)
    i = int(np.argmax((words > 2**31) & (words < 2**32 - 2**20)))  # a word where p is mid-range
    rate = float(words[i]) / 2**32
    assert word_threshold(rate) == int(words[i])
    step = tf.function(lambda X, r, s, o: dropout_layer(X, r, seed=s, offset=o), jit_compile=jit)
    x = np.ones(n, np.float32)
    got = step(tf.constant(x), tf.constant(rate, tf.float64), tf.constant(seed, tf.int64),
               tf.constant(offset, tf.int64)).numpy()
    assert got[i] != 0, "the element whose word equals the threshold must be kept"
    np.testing.assert_array_equal(got != 0, numpy_keep_mask((n,), int(words[i]), seed, offset))


def test_d8_tensorflow_native_path_gradient(tf):
    """D8: the gradient is keep * G / (1 - p) with the forward's mask; dropped get exactly 0."""
    from dropout_ref.tensorflow import dropout_layer

    X = tf.Variable(np.random.default_rng(1).standard_normal(999).astype(np.float32))
    G = tf.constant(np.random.default_rng(2).standard_normal(999).astype(np.float32))
    with tf.GradientTape() as tape:
        out = dropout_layer(X, 0.3, seed=8, offset=2)
        loss = tf.reduce_sum(out * G)
    grad = tape.gradient(loss, X).numpy()
    keep = numpy_keep_mask((999,), word_threshold(0.3), 8, 2)
    np.testing.assert_array_equal(grad[~keep], 0.0)
    np.testing.assert_array_equal(grad[keep], (G.numpy() * np.float32(1 / 0.7))[keep])


def test_p1_tensorflow_native_path_never_draws_from_the_global_generator(tf, monkeypatch):
    """P1: the seed= path touches no global generator: TensorFlow's raising leaves it intact."""
    from dropout_ref.tensorflow import dropout_layer

    def refuse(*args, **kwargs):
        raise AssertionError("the portable path drew from TensorFlow's global generator")

    monkeypatch.setattr(tf.random, "uniform", refuse)
    monkeypatch.setattr(tf.random, "stateless_uniform", refuse)
    x = values((257,))
    got = dropout_layer(tf.constant(x), 0.5, seed=6, offset=1)
    np.testing.assert_array_equal(got.numpy(), numpy_dropout(x, 0.5, seed=6, offset=1))


# --------------------------------------------------------------------------- torch


@pytest.fixture(scope="module")
def torch():
    torch = pytest.importorskip("torch")
    from dropout_ref.kernels import cpu

    ok, why = cpu.available()
    if not ok:
        pytest.skip(f"compiled CPU kernel unavailable: {why}")
    return torch


def _spy_kernel(monkeypatch, name: str) -> list:
    """Record the NumPy arrays the torch layer hands the numba entry ``name``.

    Only torch's calls, which pass torch's thread count (the NumPy oracle runs the
    same kernel without one).
    """
    from dropout_ref.kernels import cpu

    calls = []
    original = getattr(cpu, name)

    def spy(*args, **kwargs):
        if "threads" in kwargs:
            calls.append((args, kwargs))
        return original(*args, **kwargs)

    monkeypatch.setattr(cpu, name, spy)
    return calls


@pytest.mark.parametrize(("seed", "offset", "size"), CASES)
def test_p2_torch_cpu_kernel_equals_the_oracle(torch, monkeypatch, seed, offset, size):
    """P2/P3: the numba kernel on torch memory gives the oracle's output from any offset."""
    from dropout_ref.torch import dropout_layer

    calls = _spy_kernel(monkeypatch, "fused_dropout")
    x = values((size,))
    got = dropout_layer(torch.from_numpy(x), 0.3, seed=seed, offset=offset)
    np.testing.assert_array_equal(got.numpy(), numpy_dropout(x, 0.3, seed=seed, offset=offset))
    assert len(calls) == 1


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_d5_d7_torch_cpu_kernel_every_float_dtype_and_shape(torch, shape, dtype):
    """D5/D7: X's shape and dtype, the oracle's mask, kept = X * scale rounded once."""
    from dropout_ref.torch import dropout_layer

    x = values(shape)
    X = torch.from_numpy(x).to(getattr(torch, dtype))
    got = dropout_layer(X, 0.25, seed=21, offset=2)
    assert got.dtype == X.dtype and got.shape == X.shape
    keep = numpy_keep_mask(shape, word_threshold(0.25), 21, 2)
    expected = torch.where(torch.from_numpy(np.asarray(keep)), X * inverse_keep_scale(0.25),
                           torch.zeros((), dtype=X.dtype))
    # Through float64 (exact for every dtype here): NumPy compares NaNs as equal.
    np.testing.assert_array_equal(got.double().numpy(), expected.double().numpy())


def test_p5_torch_cpu_kernel_works_on_the_tensors_own_memory(torch, monkeypatch):
    """P5 as amended: the kernel reads X's storage and writes the output's, no copies."""
    from dropout_ref.torch import dropout_layer

    calls = _spy_kernel(monkeypatch, "fused_dropout")
    X = torch.randn(3, 1000)
    out = dropout_layer(X, 0.5, seed=2, offset=7)
    (args, kwargs), = calls
    assert args[0].ctypes.data == X.data_ptr()
    assert kwargs["out"].ctypes.data == out.data_ptr()


def test_p2_torch_cpu_kernel_non_contiguous_input(torch):
    """A transposed X is made contiguous first: the oracle's mask in row-major order."""
    from dropout_ref.torch import dropout_layer

    x = values((13, 9))
    X = torch.from_numpy(np.ascontiguousarray(x.T)).T
    assert not X.is_contiguous()
    got = dropout_layer(X, 0.3, seed=5, offset=1)
    np.testing.assert_array_equal(got.numpy(), numpy_dropout(x, 0.3, seed=5, offset=1))


@pytest.mark.parametrize("rate", [0.0, 1.0, 1.0 - 2.0**-40])
def test_d2_d3_torch_cpu_kernel_edge_rates(torch, rate):
    """D2/D3 and a threshold of 2**32: p = 0 returns X, the others drop every element."""
    from dropout_ref.torch import dropout_layer

    x = values((1001,))
    X = torch.from_numpy(x)
    got = dropout_layer(X, rate, seed=4, offset=1)
    if rate == 0.0:
        assert got is X
    else:
        assert not got.any() and not torch.signbit(got).any()


def test_d8_torch_cpu_kernel_gradient_eager_and_compiled(torch):
    """D8: keep * G / (1 - p) with the forward's mask, eagerly and compiled (fullgraph)."""
    from dropout_ref.torch import dropout_layer

    x = torch.randn(4099, dtype=torch.float64)
    G = torch.randn(4099, dtype=torch.float64)
    keep = torch.from_numpy(numpy_keep_mask((4099,), word_threshold(0.3), 10, 3))
    expected = torch.where(keep, G * inverse_keep_scale(0.3), 0.0)
    compiled = torch.compile(lambda t: dropout_layer(t, 0.3, seed=10, offset=3), fullgraph=True)
    for f in (lambda t: dropout_layer(t, 0.3, seed=10, offset=3), compiled):
        X = x.clone().requires_grad_(True)
        (f(X) * G).sum().backward()
        assert torch.equal(X.grad, expected)


def test_d8_torch_eager_autograd_one_pass_saves_the_mask(torch, monkeypatch):
    """D8/G3: eager autograd writes output and 1-byte mask in one kernel pass, saves the mask,
    and its backward is one select with it."""
    from dropout_ref.torch import dropout_layer

    calls = _spy_kernel(monkeypatch, "fused_dropout")
    X = torch.randn(4099).requires_grad_(True)
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(
        lambda t: saved.append((t.numel(), t.dtype)) or t, lambda t: t
    ):
        out = dropout_layer(X, 0.5, seed=7, offset=1)
    (_, kwargs), = calls
    assert kwargs["mask_out"] is not None and saved == [(4099, torch.bool)]
    G = torch.randn(4099)
    out.backward(G)
    keep = torch.from_numpy(numpy_keep_mask((4099,), word_threshold(0.5), 7, 1))
    assert torch.equal(X.grad, torch.where(keep, G * 2.0, 0.0))
    assert torch.equal(out.detach(), dropout_layer(X.detach(), 0.5, seed=7, offset=1))


def test_g1_torch_compile_fullgraph_runs_the_cpu_kernel(torch, monkeypatch):
    """G1: torch.compile(fullgraph=True) keeps the custom operator, whose kernel is numba's."""
    from dropout_ref.torch import dropout_layer

    calls = _spy_kernel(monkeypatch, "fused_dropout")
    x = values((7, 33))
    f = torch.compile(lambda t: dropout_layer(t, 0.4, seed=2**63 + 1, offset=5), fullgraph=True)
    got = f(torch.from_numpy(x))
    np.testing.assert_array_equal(got.numpy(), numpy_dropout(x, 0.4, seed=2**63 + 1, offset=5))
    assert calls


def test_p1_torch_cpu_kernel_never_draws_from_torch_generator(torch, monkeypatch):
    """P1: the seed= path draws no native mask: torch's random functions raising change nothing."""
    from dropout_ref.torch import dropout_layer

    def refuse(*args, **kwargs):
        raise AssertionError("the portable path drew from torch's generator")

    for name in ("rand", "rand_like", "randint", "bernoulli"):
        monkeypatch.setattr(torch, name, refuse)
    monkeypatch.setattr(torch.Tensor, "uniform_", refuse)
    x = values((3000,))
    got = dropout_layer(torch.from_numpy(x), 0.5, seed=6, offset=1)
    np.testing.assert_array_equal(got.numpy(), numpy_dropout(x, 0.5, seed=6, offset=1))


def test_torch_without_the_kernel_takes_the_exact_torch_path(torch, monkeypatch):
    """Where numba is unavailable the torch paths run, with the same bits."""
    from dropout_ref.kernels import cpu
    from dropout_ref.torch import dropout_layer

    monkeypatch.setattr(cpu, "available", lambda: (False, "switched off by the test"))
    calls = _spy_kernel(monkeypatch, "fused_dropout")
    x = values((517,))
    got = dropout_layer(torch.from_numpy(x), 0.3, seed=12, offset=2)
    np.testing.assert_array_equal(got.numpy(), numpy_dropout(x, 0.3, seed=12, offset=2))
    assert calls == []


def test_torch_cpu_kernel_respects_torch_thread_count(torch, monkeypatch):
    """One torch thread: the kernel runs serially on the calling thread, whatever the size."""
    from dropout_ref.kernels import cpu
    from dropout_ref.torch import dropout_layer

    kernels = cpu._load()
    seen = []
    for name in ("fused_select", "fused_select_serial"):
        original = getattr(kernels, name)
        monkeypatch.setattr(kernels, name,
                            lambda *a, _n=name, _f=original: seen.append(_n) or _f(*a))
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        x = values((cpu.SERIAL_MAX_SIZE + 5,))
        got = dropout_layer(torch.from_numpy(x), 0.5, seed=1, offset=3)
    finally:
        torch.set_num_threads(threads)
    assert seen == ["fused_select_serial"]
    np.testing.assert_array_equal(got.numpy(), numpy_dropout(x, 0.5, seed=1, offset=3))


# --------------------------------------------------------------------------- JAX


@pytest.fixture(scope="module")
def jax():
    return pytest.importorskip("jax")


@pytest.mark.parametrize(("seed", "offset", "size"), CASES)
def test_p2_jax_one_program_dropout_equals_the_oracle(jax, monkeypatch, seed, offset, size):
    """P2/P3: the eager seed= call, one jitted program (mask and select), is the oracle's."""
    import jax.numpy as jnp

    from dropout_ref.jax import dropout_layer
    from dropout_ref.jax import philox as jax_philox

    calls = []
    original = jax_philox._dropout
    monkeypatch.setattr(jax_philox, "_dropout",
                        lambda *a, **k: calls.append(k) or original(*a, **k))
    x = values((size,))
    got = np.asarray(dropout_layer(jnp.asarray(x), 0.3, seed=seed, offset=offset))
    np.testing.assert_array_equal(got, numpy_dropout(x, 0.3, seed=seed, offset=offset))
    assert len(calls) == (1 if size else 0)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32"])
@pytest.mark.parametrize("shape", SHAPES)
def test_d5_d7_jax_one_program_every_dtype_and_shape(jax, dtype, shape):
    """D5/D7: the program keeps X's shape and dtype and equals the mask-then-select path."""
    import jax.numpy as jnp

    from dropout_ref.jax import BACKEND

    ops = BACKEND.ops
    X = jnp.asarray(values(shape)).astype(dtype)
    threshold, scale = word_threshold(0.25), inverse_keep_scale(0.25)
    got = ops.fused_portable_dropout(X, threshold, 31, 6, scale)
    expected = ops.select_scaled(X, ops.portable_keep_mask(X, threshold, 31, 6), scale)
    if got is None:  # empty: the generic path
        assert X.size == 0
        return
    assert got.dtype == X.dtype and got.shape == X.shape
    np.testing.assert_array_equal(np.asarray(got, np.float32), np.asarray(expected, np.float32))


def test_p3_jax_mulhi_products_equal_the_16_bit_products(jax):
    """P3: jax.lax.mulhi's high and low words equal the exact 16-bit products, edge words too."""
    import jax.numpy as jnp

    from dropout_ref.core.philox import M0, M1, Uint32Products
    from dropout_ref.jax.philox import JAX_OPS, JaxIntOps

    class SixteenBit(JaxIntOps):  # the portable products, never jax.lax.mulhi
        mulhilo = Uint32Products.mulhilo
        mulhi = Uint32Products.mulhi

    words = np.concatenate([
        np.array([0, 1, 2**16 - 1, 2**16, 2**31, 2**32 - 1], np.uint32),
        np.random.default_rng(5).integers(0, 2**32, 4096, dtype=np.uint32),
    ])
    x = jnp.asarray(words)
    exact = SixteenBit()
    for m in (M0, M1):
        got, want = JAX_OPS.mulhilo(x, m), exact.mulhilo(x, m)
        expected_hi = (words.astype(np.uint64) * np.uint64(m)) >> np.uint64(32)
        np.testing.assert_array_equal(np.asarray(got[0]), expected_hi.astype(np.uint32))
        np.testing.assert_array_equal(np.asarray(got[0]), np.asarray(want[0]))
        np.testing.assert_array_equal(np.asarray(got[1]), np.asarray(want[1]))


def test_d8_jax_one_program_gradient(jax):
    """D8: grad of sum(out * G) is keep * G / (1 - p) with the forward's mask."""
    import jax.numpy as jnp

    from dropout_ref.jax import dropout_layer

    x = jnp.asarray(np.random.default_rng(3).standard_normal(999).astype(np.float32))
    G = jnp.asarray(np.random.default_rng(4).standard_normal(999).astype(np.float32))
    grad = jax.grad(lambda t: jnp.sum(dropout_layer(t, 0.3, seed=8, offset=2) * G))(x)
    keep = numpy_keep_mask((999,), word_threshold(0.3), 8, 2)
    np.testing.assert_array_equal(np.asarray(grad)[~keep], 0.0)
    np.testing.assert_array_equal(np.asarray(grad)[keep],
                                  (np.asarray(G) * np.float32(1 / 0.7))[keep])



def test_jax_rng_bit_generator_puts_the_key_in_the_counters_high_words():
    """Why JAX keeps its own Philox: XLA's RNG_PHILOX state u64[2] = (key, c_low) runs the
    counter (c_low, key), so c2|c3 = the key, while P3 needs c2 = c3 = 0 (seed 0 only)."""
    jax = pytest.importorskip("jax")
    jnp = pytest.importorskip("jax.numpy")
    seed = 0x0123456789ABCDEF
    k0, k1 = seed & 0xFFFFFFFF, seed >> 32
    _, out = jax.lax.rng_bit_generator(
        jnp.asarray([k0, k1, 5, 0], jnp.uint32), (16,), dtype=jnp.uint32,
        algorithm=jax.lax.RandomAlgorithm.RNG_PHILOX,
    )
    blocks = np.arange(5, 9, dtype=np.uint64)
    keyed_high = numpy_philox4x32_10([blocks, 0, k0, k1], (k0, k1)).T.reshape(-1)
    np.testing.assert_array_equal(np.asarray(out), keyed_high.astype(np.uint32))
    assert not np.array_equal(np.asarray(out), numpy_words((16,), seed, 20))


# --------------------------------------------------------------------------- bench


def test_bench_default_run_skips_frameworks_that_are_not_installed(monkeypatch, capsys):
    """`dropout-ref bench` without --backend runs what is installed and names what is not."""
    import argparse
    import importlib.util

    from dropout_ref.cli.commands import bench

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "jax" else real(name, *a))
    seen = {}

    def fake_run(config, progress=None):
        seen["backends"], seen["env"] = config.backends, config.extra_env
        return {"machine": {"cpu_count": 1, "load_average_1_5_15": None},
                "load_average_after": None, "config": {"repeats": 1, "device": "cpu"},
                "backends": [], "ratios": [], "seconds": 0.0}

    monkeypatch.setattr(bench, "run_benchmark", fake_run)
    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    assert bench.run(parser.parse_args(["--format", "json", "--threads", "1"])) == 0
    assert "jax" not in seen["backends"] and "numpy" in seen["backends"]
    assert "skipping jax: jax is not installed" in capsys.readouterr().err
    # --threads 1 reaches every worker's environment.
    assert seen["env"]["OMP_NUM_THREADS"] == "1" and seen["env"]["NUMBA_NUM_THREADS"] == "1"
    assert "intra_op_parallelism_threads=1" in seen["env"]["XLA_FLAGS"]


def test_bench_refuses_a_thread_count_below_one(capsys):
    """Bad input names the argument and the value."""
    import argparse

    from dropout_ref.cli.commands import bench

    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    assert bench.run(parser.parse_args(["--threads", "0"])) == 2
    assert "--threads must be >= 1; got 0" in capsys.readouterr().err
