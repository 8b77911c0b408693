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
              float(np.float32(0.1)), 0.06997988373041153, 0.23348142206668854]
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


@pytest.mark.one_environment
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
        rate = torch.tensor(r, dtype=torch.float32)
        got = step(x, rate, torch.tensor(seed), torch.tensor(offset))
        got.backward(torch.ones_like(got))
        x_eager = X.clone().requires_grad_(True)
        ref = dropout_layer(x_eager, r, seed=seed % 2**64, offset=offset)
        ref.backward(torch.ones_like(ref))
        assert same_bits(got.detach().numpy(), ref.detach().numpy()), r
        assert same_bits(x.grad.numpy(), x_eager.grad.numpy()), r  # D8: same mask in backward
    assert counters["stats"]["unique_graphs"] - before == 1


@pytest.mark.one_environment
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
    with pytest.raises(ValueError, match=r"dropout must satisfy 0 <= dropout <= 1, got 1\.5"):
        dropout_layer(X, torch.tensor(1.5), seed=1)
    with pytest.raises(ValueError, match=r"got -0\.5"):
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
    for i, r in enumerate(float32_rates(3)):
        seed, offset = [3, 2**40 + 7, 2**62 + 1][i % 3], int(RNG.integers(0, 2**40))
        got = step(X, tf.constant(r, tf.float32), tf.constant(seed, tf.int64),
                   tf.constant(offset, tf.int64))
        ref = dropout_layer(X, r, seed=seed, offset=offset)
        assert same_bits(got.numpy(), ref.numpy()), r
    assert step.experimental_get_tracing_count() == 1
    # float64 rates (their own dtype: a second trace) on float64 X.
    X64 = tf.cast(X, tf.float64)
    for r in RNG.random(4):
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


def test_s2_jax_64_bit_seeds_and_offsets_as_two_words_are_one_program():
    """S2 without x64: a seed/offset as uint32[2] (low, high words) reaches all of [0, 2**64)."""
    jax = pytest.importorskip("jax")
    import jax.numpy as jnp

    from dropout_ref.jax import dropout_layer
    from dropout_ref.jax.runtime import seed_words

    step = jax.jit(lambda x, s, o: dropout_layer(x, 0.375, seed=s, offset=o))
    X = jax.random.normal(jax.random.key(0), SHAPE)
    for seed, offset in ((0, 0), (2**32, 5), (2**40 + 7, 2**40 + 1), (2**64 - 1, 2**63 + 3)):
        got = step(X, seed_words(seed), seed_words(offset))
        ref = dropout_layer(X, 0.375, seed=seed, offset=offset)
        assert same_bits(np.asarray(got), np.asarray(ref)), (seed, offset)
    assert step._cache_size() == 1
    with pytest.raises(TypeError, match="seed as two 32-bit words must be a uint32 array"):
        step(X, jnp.asarray([1, 2], jnp.int32), seed_words(0))


def test_s1_jax_eager_keeps_d1():
    pytest.importorskip("jax")
    import jax.numpy as jnp

    from dropout_ref.jax import dropout_layer

    X = jnp.ones(SHAPE)
    with pytest.raises(ValueError, match=r"dropout must satisfy 0 <= dropout <= 1, got 1\.5"):
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


# -- the course MLP's steps (S2, S3) -------------------------------------------------------------


def small_batch():
    rng = np.random.default_rng(3)
    return rng.random((16, 12), dtype=np.float32), rng.integers(0, 3, 16)


def small_mlp(module):
    return module.MLP(num_inputs=12, num_outputs=3, num_hiddens1=8, num_hiddens2=8, rng=0)


def test_s2_s3_jax_seeded_step_is_one_program_for_every_seed_and_rate():
    pytest.importorskip("jax")
    from dropout_ref.course.jax import training
    from dropout_ref.models.jax import mlp

    images, labels = small_batch()
    compiled, reference = small_mlp(mlp), small_mlp(mlp)
    reference.train()
    before = training._compiled_seeded_step.jitted_fn._cache_size()
    for step, (seed, rates) in enumerate([(5, None), (6, (0.1, 0.3)), (7, (0.0, 1.0)),
                                          (2**32 - 1, (0.25, 0.5)), (2**40 + 3, None),
                                          (2**64 - 1, (0.5, 0.125))]):
        loss = training.sgd_step(compiled, images, labels, 0.5, mask_seed=seed, rates=rates)
        # The op-by-op update with Python values: the same masks and arithmetic.
        import jax.numpy as jnp

        eager = training._update(
            reference, jnp.asarray(images), jnp.asarray(labels.astype(np.int32)),
            jnp.float32(0.5), seed, None if rates is None else tuple(map(float, rates)),
        )
        assert loss == pytest.approx(float(eager), rel=1e-6), step
    assert training._compiled_seeded_step.jitted_fn._cache_size() - before == 2  # rates: None, pair
    for name, value in compiled.get_weights().items():
        np.testing.assert_allclose(value, reference.get_weights()[name], rtol=1e-5, atol=1e-7)


def test_s2_tf_seeded_step_traces_once_for_every_seed():
    pytest.importorskip("tensorflow")
    from dropout_ref.course.tensorflow import training
    from dropout_ref.models.tensorflow import mlp

    images, labels = small_batch()
    model = small_mlp(mlp)
    for seed in (1, 2, 2**40, 2**64 - 1):
        training.sgd_step(model, images, labels, 0.5, mask_seed=seed, rates=(0.2, 0.4))
    assert training._graph_step(model).experimental_get_tracing_count() == 1


def test_s3_train_records_each_steps_rates():
    from types import SimpleNamespace

    from dropout_ref import schedules
    from dropout_ref.course.training import TrainConfig, train
    from dropout_ref.models.numpy import mlp

    images, labels = small_batch()
    data = SimpleNamespace(train_images=images, train_labels=labels, test_images=images,
                           test_labels=labels)
    schedule = {"dropout1": schedules.early(0.3, 5, "linear"), "dropout2": schedules.late(0.5, 2)}
    rows = train("numpy", small_mlp(mlp), data, TrainConfig(epochs=2, batch_size=4),
                 progress=False, schedule=schedule)
    got = [rates for row in rows for rates in row["dropout_rates"]]
    want = [[float(np.float32(schedule["dropout1"](i))), schedule["dropout2"](i)]
            for i in range(8)]
    assert got == want
