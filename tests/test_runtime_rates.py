"""SPEC S1/S2: runtime rates, seeds and offsets inside compiled steps.

Per framework: the compiled output (and gradient) equals the eager call with the
Python values bit for bit, one compiled program serves every value (the
frameworks' own counters), an invalid runtime rate fails loudly or gives an
all-NaN output, and eager calls keep D1's errors. Compilations cost seconds on
a shared CPU, so each framework compiles one small function and checks many
values on it. The rates are fixed edge cases plus seeded random draws.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from dropout_ref.core.contract import DropoutOps

RNG = np.random.default_rng(20261204)
#: Edge cases: D2, D3, the largest float32 below 1, a rate below 2**-30, exact halves.
EDGE_RATES = [0.0, 1.0, 0.5, 0.25, float(np.float32(1 - 2**-24)), float(np.float32(2**-31)),
              float(np.float32(0.1)), 0.06997987627983093, 0.23348142206668854]
SHAPE = (5, 7)


def float32_rates(n: int) -> list[float]:
    return EDGE_RATES + [float(r) for r in RNG.random(n).astype(np.float32)]


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    a, b = np.ascontiguousarray(a), np.ascontiguousarray(b)
    return a.dtype == b.dtype and a.tobytes() == b.tobytes()


# -- torch ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def torch_compiled():
    torch = pytest.importorskip("torch")
    from dropout_ref.torch import dropout_layer

    torch._dynamo.reset()

    def step(x, r, s, o):
        return dropout_layer(x, r, seed=s, offset=o)

    return torch, dropout_layer, torch.compile(step, fullgraph=True)


def test_s1_s2_torch_compile_equals_eager_with_one_graph(torch_compiled):
    torch, dropout_layer, step = torch_compiled
    from torch._dynamo.utils import counters

    X = torch.randn(SHAPE, generator=torch.Generator().manual_seed(0))
    before = counters["stats"]["unique_graphs"]
    for i, r in enumerate(float32_rates(6)):
        # Seeds above 2**32 and a negative int64 (read as its 64 bits: v + 2**64).
        seed = [3, 2**40 + 7, -5, 2**62 + 1][i % 4]
        offset = int(RNG.integers(0, 2**40))
        x = X.clone().requires_grad_(True)
        got = step(x, torch.tensor(r, dtype=torch.float32), torch.tensor(seed), torch.tensor(offset))
        got.backward(torch.ones_like(got))
        x_eager = X.clone().requires_grad_(True)
        ref = dropout_layer(x_eager, r, seed=seed % 2**64, offset=offset)
        ref.backward(torch.ones_like(ref))
        assert same_bits(got.detach().numpy(), ref.detach().numpy()), r
        assert same_bits(x.grad.numpy(), x_eager.grad.numpy()), r  # D8: same mask in backward
    assert counters["stats"]["unique_graphs"] - before == 1


def test_s1_torch_invalid_runtime_rate_fails_loudly(torch_compiled):
    torch, _, step = torch_compiled
    X = torch.ones(SHAPE)
    for bad in (1.5, -0.25, math.nan):
        with pytest.raises(RuntimeError, match="0 <= dropout <= 1"):
            step(X, torch.tensor(bad), torch.tensor(1), torch.tensor(0))


def test_s1_torch_eager_tensor_values_keep_d1():
    torch = pytest.importorskip("torch")
    from dropout_ref.torch import dropout_layer

    X = torch.ones(SHAPE)
    with pytest.raises(ValueError, match="dropout must satisfy 0 <= dropout <= 1, got 1.5"):
        dropout_layer(X, torch.tensor(1.5), seed=1)
    with pytest.raises(ValueError, match="got -0.5"):
        dropout_layer(X, -0.5)
    # An eager 0-d integer seed means its value (the same step runs eager and compiled).
    assert torch.equal(dropout_layer(X, 0.5, seed=torch.tensor(9), offset=torch.tensor(4)),
                       dropout_layer(X, 0.5, seed=9, offset=4))


# -- tensorflow ----------------------------------------------------------------------------------


@pytest.mark.parametrize("jit_compile", [False, True])
def test_s1_s2_tf_function_equals_eager_with_one_trace(jit_compile):
    tf = pytest.importorskip("tensorflow")
    from dropout_ref.tensorflow import dropout_layer

    step = tf.function(lambda x, r, s, o: dropout_layer(x, r, seed=s, offset=o),
                       jit_compile=jit_compile)
    X = tf.random.stateless_normal(SHAPE, seed=[1, 2])
    for i, r in enumerate(float32_rates(10)):
        seed, offset = [3, 2**40 + 7, 2**62 + 1][i % 3], int(RNG.integers(0, 2**40))
        got = step(X, tf.constant(r, tf.float32), tf.constant(seed, tf.int64),
                   tf.constant(offset, tf.int64))
        ref = dropout_layer(X, r, seed=seed, offset=offset)
        assert same_bits(got.numpy(), ref.numpy()), r
    assert step.experimental_get_tracing_count() == 1
    # float64 rates (their own dtype: a second trace) on float64 X.
    X64 = tf.cast(X, tf.float64)
    for r in RNG.random(10):
        got = step(X64, tf.constant(r, tf.float64), tf.constant(11, tf.int64),
                   tf.constant(2, tf.int64))
        assert same_bits(got.numpy(), dropout_layer(X64, float(r), seed=11, offset=2).numpy()), r
    # Invalid rates: an assertion in graph mode; XLA skips assertions, the output is NaN.
    for bad in (1.5, -0.25, math.nan):
        args = (X, tf.constant(bad, tf.float32), tf.constant(1, tf.int64), tf.constant(0, tf.int64))
        if jit_compile:
            assert np.isnan(step(*args).numpy()).all()
        else:
            with pytest.raises(tf.errors.InvalidArgumentError, match="0 <= dropout <= 1"):
                step(*args)
    assert step.experimental_get_tracing_count() == 2


# -- jax -----------------------------------------------------------------------------------------


def test_s1_s2_jax_jit_equals_eager_with_one_program():
    jax = pytest.importorskip("jax")
    import jax.numpy as jnp

    from dropout_ref.jax import dropout_layer

    @jax.jit
    def step(x, r, s, o):
        return dropout_layer(x, r, seed=s, offset=o)

    @jax.jit
    def keyed(x, r, k):
        return dropout_layer(x, r, key=k)

    X = jax.random.normal(jax.random.key(0), SHAPE)
    key = jax.random.key(7)
    # Many rates: without x64 the scale is computed in float32 (see dropout_ref.core.runtime).
    for r in float32_rates(100):
        seed, offset = int(RNG.integers(0, 2**32)), int(RNG.integers(0, 2**32 - 64))
        got = step(X, jnp.float32(r), jnp.uint32(seed), jnp.uint32(offset))
        ref = dropout_layer(X, r, seed=seed, offset=offset)
        assert same_bits(np.asarray(got), np.asarray(ref)), r
        assert same_bits(np.asarray(keyed(X, jnp.float32(r), key)),
                         np.asarray(dropout_layer(X, r, key=key))), r
    assert step._cache_size() == 1 and keyed._cache_size() == 1
    # int32 seeds too; the gradient uses the forward's mask (D8).
    grad = jax.grad(lambda x, r, s: step(x, r, s, jnp.int32(3)).sum())
    got = grad(X, jnp.float32(0.3), jnp.int32(5))
    ref = jax.grad(lambda x: dropout_layer(x, 0.3, seed=5, offset=3).sum())(X)
    assert same_bits(np.asarray(got), np.asarray(ref))
    # No run-time check inside jit: an invalid rate gives an all-NaN output, no mask.
    for bad in (1.5, -0.25, math.nan):
        assert np.isnan(np.asarray(step(X, jnp.float32(bad), jnp.uint32(1), jnp.uint32(0)))).all()


def test_s1_jax_eager_keeps_d1():
    jax = pytest.importorskip("jax")
    import jax.numpy as jnp

    from dropout_ref.jax import dropout_layer

    X = jnp.ones(SHAPE)
    with pytest.raises(ValueError, match="dropout must satisfy 0 <= dropout <= 1, got 1.5"):
        dropout_layer(X, jnp.float32(1.5), seed=1)
    with pytest.raises(TypeError, match="bool"):
        dropout_layer(X, True, seed=1)
    assert same_bits(np.asarray(dropout_layer(X, 0.5, seed=jnp.uint32(9))),
                     np.asarray(dropout_layer(X, 0.5, seed=9)))


# -- the contract --------------------------------------------------------------------------------


def test_s1_contract_default_refuses_runtime_values():
    from dropout_ref.core.registry import get_backend

    ops = get_backend("numpy").ops
    assert isinstance(ops, DropoutOps) and not ops.is_runtime(np.float32(0.5))
    with pytest.raises(TypeError, match="Python numbers only"):
        DropoutOps.runtime_dropout(ops, np.ones(3), 0.5, 1, 0, None, None)
