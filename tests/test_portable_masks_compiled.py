"""``portable_masks`` inside compiled steps: ``jax.jit``/``nnx.jit``, ``tf.function``, Keras (P9).

Each test cites SPEC P9. A context entered inside a traced function takes a traced seed
and numbers its sites at trace time (one program for every seed); a context entered
eagerly around a compiled step keeps its seed and count as run-time state, so the k-th
call drops what the k-th eager step would. JAX tests skip without jax/flax, TensorFlow
tests without tensorflow/keras.
"""

from __future__ import annotations

import numpy as np
import pytest

from dropout_ref.core.sites import SITE_STRIDE

N_SEEDS = 100


def _seeds(n: int, high: int, seed: int = 0) -> list[int]:
    """Distinct seeds in ``[0, high)``, with both ends of the range among them."""
    rng = np.random.default_rng(seed)
    drawn = {0, high - 1}
    while len(drawn) < n:
        drawn.add(int(rng.integers(0, high, dtype=np.uint64)))
    return sorted(drawn)


# --- JAX ---------------------------------------------------------------------------------------


@pytest.fixture
def jx():
    jax = pytest.importorskip("jax")
    pytest.importorskip("flax")
    from dropout_ref import jax as jax_backend

    return jax, jax_backend


def _jax_forward():
    """Three Flax sites: nnx Dropout twice (one with broadcast_dims), linen; their outputs."""
    import jax
    from flax import linen, nnx

    a = nnx.Dropout(0.3, rngs=nnx.Rngs(0))
    b = nnx.Dropout(0.6, broadcast_dims=(0,), rngs=nnx.Rngs(0))
    c = linen.Dropout(0.5, deterministic=False)

    def forward(x):
        # Each site's output is returned as it is: arithmetic between sites may be fused and
        # rounded otherwise by XLA, where the masks and each dropout's values are bit-exact.
        return (
            a(x, deterministic=False),
            b(x, deterministic=False),
            c.apply({}, x, rngs={"dropout": jax.random.key(0)}),
        )

    return forward


def _jax_x(shape=(8, 12)):
    import jax.numpy as jnp

    return jnp.asarray(np.random.default_rng(3).standard_normal(shape, dtype=np.float32))


def test_p9_jax_context_inside_jit_traced_seed_one_program_equals_eager(jx):
    jax, jb = jx
    import jax.numpy as jnp

    from dropout_ref.jax.runtime import seed_words

    forward, x = _jax_forward(), _jax_x()
    traces = []

    def scalar_step(x, seed):
        traces.append("scalar")
        with jb.portable_masks(seed) as ctx:
            out = forward(x)
        assert [s.j for s in ctx.sites] == [0, 1, 2]  # numbered at trace time
        return out

    def words_step(x, words):
        traces.append("words")
        with jb.portable_masks(words):
            return forward(x)

    scalar_jit, words_jit = jax.jit(scalar_step), jax.jit(words_step)
    for seed in _seeds(N_SEEDS, 2**32):  # uint32: every 32-bit seed
        with jb.portable_masks(seed):
            eager = forward(x)
        for got, want in zip(scalar_jit(x, jnp.uint32(seed)), eager, strict=True):
            np.testing.assert_array_equal(got, want)
    for seed in _seeds(N_SEEDS, 2**64, seed=1):  # uint32[2] words: every 64-bit seed
        with jb.portable_masks(seed):
            eager = forward(x)
        for got, want in zip(words_jit(x, seed_words(seed)), eager, strict=True):
            np.testing.assert_array_equal(got, want)
    assert traces == ["scalar", "words"]  # one trace, one program, for 100 seeds each
    assert scalar_jit._cache_size() == 1 and words_jit._cache_size() == 1


def test_p9_jax_compiled_step_k_calls_continue_the_numbering(jx):
    jax, jb = jx
    forward, x = _jax_forward(), _jax_x()
    traces = []

    def step(x):
        traces.append(1)
        return forward(x)

    compiled = jax.jit(step)
    for seed in (11, 2**40 + 3):
        with jb.portable_masks(seed) as eager_ctx:
            eager = [forward(x) for _ in range(4)]
        with jb.portable_masks(seed) as ctx:
            got = [compiled(x) for _ in range(3)]
            assert ctx.count == 9  # run-time count: three calls of three sites
            got.append(forward(x))  # eager sites after compiled ones continue at 9
        assert eager_ctx.count == ctx.count == 12
        for k in range(4):
            for site in range(3):
                np.testing.assert_array_equal(got[k][site], eager[k][site])
        # Fresh masks per call: 96 elements kept w.p. 0.7 each at the first site alone,
        # so P(two calls' outputs equal) <= max(0.7, 0.3)**96 < 1e-14.
        assert not np.array_equal(got[0][0], got[1][0])
        # Traced once, in the first context: its sites are listed once, numbers unknown then.
        compiled_sites = [s for s in ctx.sites if s.compiled]
        assert [s.j for s in compiled_sites] == ([None] * 3 if seed == 11 else [])
    assert len(traces) == 1 and compiled._cache_size() == 1


def test_p9_jax_eager_site_after_compiled_steps_takes_the_next_number(jx):
    jax, jb = jx
    from flax import nnx

    x = _jax_x()
    layer = nnx.Dropout(0.4, rngs=nnx.Rngs(0))
    compiled = jax.jit(lambda t: layer(t, deterministic=False))
    with jb.portable_masks(5) as ctx:
        compiled(x)
        compiled(x)
        third = layer(x, deterministic=False)
    np.testing.assert_array_equal(third, jb.dropout_layer(x, 0.4, seed=5, offset=2 * SITE_STRIDE))
    assert [s.j for s in ctx.sites] == [None, 2]


def test_p9_nnx_jit_training_step_equals_eager(jx):
    jax, jb = jx
    import jax.numpy as jnp
    from flax import nnx

    class Net(nnx.Module):
        def __init__(self, rngs):
            self.l1 = nnx.Linear(12, 32, rngs=rngs)
            self.d1 = nnx.Dropout(0.3, rngs=rngs)
            self.l2 = nnx.Linear(32, 16, rngs=rngs)
            self.d2 = nnx.Dropout(0.5, rngs=rngs)
            self.l3 = nnx.Linear(16, 1, rngs=rngs)

        def __call__(self, x):
            h = self.d1(nnx.relu(self.l1(x)))
            return self.l3(self.d2(nnx.relu(self.l2(h))))

    traces = []

    def step(model, x, y):
        traces.append(1)

        def loss(m):
            return jnp.mean((m(x) - y) ** 2)

        value, grads = nnx.value_and_grad(loss)(model)
        params = nnx.state(model, nnx.Param)
        nnx.update(model, jax.tree.map(lambda p, g: p - 0.1 * g, params, grads))
        return value

    x, y = _jax_x((16, 12)), _jax_x((16, 1))

    def train(seed, run):
        model = Net(nnx.Rngs(0))
        model.train()
        with jb.portable_masks(seed):
            losses = [float(run(model, x, y)) for _ in range(3)]
        return losses, jax.tree.leaves(nnx.state(model, nnx.Param))

    compiled = nnx.jit(step)
    for seed in (4, 9):
        eager_losses, eager_params = train(seed, step)
        losses, params = train(seed, compiled)
        np.testing.assert_allclose(losses, eager_losses, rtol=1e-6, atol=1e-6)
        for got, want in zip(params, eager_params, strict=True):
            np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    other_losses, _ = train(5, compiled)
    # Another seed, other masks: the losses differ (equal only if the 16 x 32 and 16 x 16
    # masks of both steps agreed, P <= 0.7**512 + ...: never in practice).
    assert not np.allclose(other_losses, losses)
    assert traces.count(1) == 6 + 1  # 6 eager steps, one nnx.jit trace for both seeds


def test_p9_jax_native_generator_never_drawn_in_compiled_steps(jx, monkeypatch):
    jax, jb = jx
    import jax.numpy as jnp
    from flax import linen

    layer = linen.Dropout(0.5, deterministic=False)
    x = _jax_x()

    def native(t):
        return layer.apply({}, t, rngs={"dropout": jax.random.key(1)})

    traced_outside = jax.jit(native)
    native_out = traced_outside(x)  # native masks, traced outside any context

    def refuse(*args, **kwargs):
        raise AssertionError("jax.random.bernoulli drawn inside portable_masks")

    monkeypatch.setattr(jax.random, "bernoulli", refuse)
    with jb.portable_masks(3):
        inside = traced_outside(x)  # retraced inside (the jit cache key carries the context)
    np.testing.assert_array_equal(inside, jb.dropout_layer(x, 0.5, seed=3, offset=0))
    assert traced_outside._cache_size() == 2

    @jax.jit
    def entered_inside(t, seed):
        with jb.portable_masks(seed):
            return native(t)

    np.testing.assert_array_equal(
        entered_inside(x, jnp.uint32(3)), jb.dropout_layer(x, 0.5, seed=3, offset=0)
    )
    monkeypatch.undo()
    # Traced inside, called outside: traced again, natively (Flax's own masks, as before).
    np.testing.assert_array_equal(traced_outside(x), native_out)


def test_p9_jax_traced_inside_then_called_outside_is_traced_again_natively(jx):
    jax, jb = jx
    from flax import linen

    layer = linen.Dropout(0.5, deterministic=False)
    x = _jax_x()

    def native(t):
        return layer.apply({}, t, rngs={"dropout": jax.random.key(1)})

    compiled = jax.jit(native)
    with jb.portable_masks(3):
        portable = compiled(x)
    outside = compiled(x)
    assert compiled._cache_size() == 2
    np.testing.assert_array_equal(outside, native(x))  # Flax's own mask, key 1
    # Flax's mask equals the portable one w.p. <= 0.5**96.
    assert not np.array_equal(outside, portable)


def test_p9_jax_bad_input_one_clear_error_each(jx):
    jax, jb = jx
    import jax.numpy as jnp
    from flax import nnx

    layer = nnx.Dropout(0.5, rngs=nnx.Rngs(0))
    x = _jax_x()
    with pytest.raises(ValueError, match=r"seed must be in \[0, 2\*\*64\), got 1844674407"):
        jb.portable_masks(2**64)
    with pytest.raises(TypeError, match="seed must be an integer array, got a traced float32"):
        jax.jit(lambda t, s: jb.portable_masks(s))(x, jnp.float32(1.0))
    with pytest.raises(TypeError, match=r"uint32\[2\] words"):
        jax.jit(lambda t, s: jb.portable_masks(s))(x, jnp.zeros((3,), jnp.uint32))

    @jax.jit
    def nested(t, s):
        with jb.portable_masks(s):
            with jb.portable_masks(s):
                return t

    with pytest.raises(RuntimeError, match="nesting is not supported"):
        nested(x, jnp.uint32(1))
    with jb.portable_masks(1):
        with pytest.raises(RuntimeError, match="already active"):
            jax.jit(lambda t, s: jb.portable_masks(s).__enter__())(x, jnp.uint32(2))
        with pytest.raises(RuntimeError, match=r"jax\.vmap"):
            jax.vmap(lambda t: layer(t, deterministic=False))(x)
        remat = jax.checkpoint(lambda t: layer(t, deterministic=False))
        with pytest.raises(RuntimeError, match=r"jax\.checkpoint"):
            jax.jit(jax.grad(lambda t: jnp.sum(remat(t) * t)))(x)


def test_p9_jax_checkpoint_inside_a_context_entered_in_the_trace_is_consistent(jx):
    jax, jb = jx
    import jax.numpy as jnp
    from flax import nnx

    layer = nnx.Dropout(0.5, rngs=nnx.Rngs(0))
    x = _jax_x()
    remat = jax.checkpoint(lambda t: layer(t, deterministic=False))

    @jax.jit
    def grad(t, seed):
        with jb.portable_masks(seed):
            return jax.grad(lambda u: jnp.sum(remat(u) * u))(t)

    # d/dx sum(dropout(x) * x) = 2 * dropout(x): the recomputed mask is the forward's.
    want = 2 * jb.dropout_layer(x, 0.5, seed=6, offset=0)
    np.testing.assert_allclose(grad(x, jnp.uint32(6)), want, rtol=1e-6)


# --- TensorFlow and Keras ----------------------------------------------------------------------


@pytest.fixture
def tfx():
    tf = pytest.importorskip("tensorflow")
    pytest.importorskip("keras")
    from dropout_ref import tensorflow as tf_backend

    return tf, tf_backend


def _tf_forward():
    """tf.nn.dropout, a Keras Dropout and a SpatialDropout1D: three sites, their outputs."""
    import keras
    import tensorflow as tf

    drop = keras.layers.Dropout(0.4)
    spatial = keras.layers.SpatialDropout1D(0.5)

    def forward(x):
        # Each site's output as it is (arithmetic between sites could be fused by XLA).
        return tf.nn.dropout(x, 0.3), drop(x, training=True), spatial(x, training=True)

    return forward


def _tf_x(shape=(4, 6, 5)):
    import tensorflow as tf

    return tf.constant(np.random.default_rng(3).standard_normal(shape, dtype=np.float32))


@pytest.mark.parametrize("jit_compile", [False, True])
def test_p9_tf_function_context_inside_traced_seed_one_graph_equals_eager(tfx, jit_compile):
    tf, tb = tfx
    forward, x = _tf_forward(), _tf_x()

    @tf.function(jit_compile=jit_compile)
    def step(x, seed):
        with tb.portable_masks(seed) as ctx:
            out = forward(x)
        assert [s.j for s in ctx.sites] == [0, 1, 2]
        return out

    for seed in _seeds(N_SEEDS, 2**64):  # int64 read as its 64 bits
        with tb.portable_masks(seed):
            eager = forward(x)
        bits = seed - 2**64 if seed >= 2**63 else seed
        np.testing.assert_array_equal(step(x, tf.constant(bits, tf.int64)), eager)
    assert step.experimental_get_tracing_count() == 1


@pytest.mark.parametrize("jit_compile", [False, True])
def test_p9_tf_function_k_calls_continue_the_numbering(tfx, jit_compile):
    tf, tb = tfx
    forward, x = _tf_forward(), _tf_x()
    compiled = tf.function(forward, jit_compile=jit_compile)
    for seed in (11, 2**63 + 7):
        with tb.portable_masks(seed) as eager_ctx:
            eager = [forward(x) for _ in range(3)]
        with tb.portable_masks(seed) as ctx:
            got = [compiled(x) for _ in range(3)]
            assert ctx.count == 9
            after = tf.nn.dropout(x, 0.2)  # eager, numbered after the compiled sites
        assert eager_ctx.count == 9
        for k in range(3):
            np.testing.assert_array_equal(got[k], eager[k])
        np.testing.assert_array_equal(
            after, tb.dropout_layer(x, 0.2, seed=seed, offset=9 * SITE_STRIDE)
        )
        # 120 elements kept w.p. 0.7 each at the first site: P(equal) <= 0.7**120 < 1e-18.
        assert not np.array_equal(got[0], got[1])
    assert compiled.experimental_get_tracing_count() == 1  # the second seed reused the graph
    assert [s.j for s in ctx.sites if s.compiled] == []  # listed in the tracing context only
    native = compiled(x)  # outside: traced again, natively (not the portable graph)
    assert compiled.experimental_get_tracing_count() == 2
    # Native equals portable w.p. <= 0.7**120 at the first site alone.
    assert not np.array_equal(native[0], got[0][0])


def _keras_model(**compile_kwargs):
    import keras

    keras.utils.set_random_seed(1)
    model = keras.Sequential([
        keras.Input((6,)),
        keras.layers.Dense(16, activation="relu"),
        keras.layers.Dropout(0.5),
        keras.layers.Dense(8),
        keras.layers.Dropout(0.3),
        keras.layers.Dense(1),
    ])
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse", **compile_kwargs)
    return model


def _keras_train(tb, how, seed, **compile_kwargs):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((48, 6)).astype(np.float32)
    Y = rng.standard_normal((48, 1)).astype(np.float32)
    model = _keras_model(**compile_kwargs)
    with tb.portable_masks(seed) as ctx:
        if how == "fit":
            model.fit(X, Y, batch_size=16, epochs=1, shuffle=False, verbose=0)
        else:
            for k in range(3):
                model.train_on_batch(X[16 * k : 16 * k + 16], Y[16 * k : 16 * k + 16])
        assert ctx.count == 6  # 3 batches x 2 Dropout layers, compiled or not
    return [w.numpy() for w in model.weights]


@pytest.mark.parametrize("how", ["fit", "train_on_batch"])
@pytest.mark.parametrize(
    "compile_kwargs",
    [{}, {"jit_compile": True}, {"steps_per_execution": 3}],
    ids=["default", "xla", "steps_in_one_graph"],
)
def test_p9_keras_tf_compiled_training_equals_eager(tfx, how, compile_kwargs):
    _, tb = tfx
    eager = _keras_train(tb, how, 21, run_eagerly=True)
    compiled = _keras_train(tb, how, 21, **compile_kwargs)
    for got, want in zip(compiled, eager, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    other = _keras_train(tb, how, 22, **compile_kwargs)
    # Another seed moves the weights elsewhere (alike only if all six masks agreed).
    assert max(float(np.max(np.abs(a - b))) for a, b in zip(other, compiled, strict=True)) > 1e-4


def test_p9_tf_native_generators_never_drawn_in_compiled_steps(tfx, monkeypatch):
    tf, tb = tfx
    from keras.src.random.seed_generator import SeedGenerator
    from tensorflow.python.ops import random_ops, stateless_random_ops

    forward, x = _tf_forward(), _tf_x()
    traced_outside = tf.function(forward)
    traced_outside(x)  # native masks, traced outside any context
    assert traced_outside.experimental_get_tracing_count() == 1

    def refuse(*args, **kwargs):
        raise AssertionError("a TensorFlow/Keras generator drawn inside portable_masks")

    for owner, name in [
        (random_ops, "random_uniform"),
        (stateless_random_ops, "stateless_random_uniform"),
        (tf.random, "uniform"),
        (tf.random, "stateless_uniform"),
        (SeedGenerator, "next"),
    ]:
        monkeypatch.setattr(owner, name, refuse)
    with tb.portable_masks(8):
        got = traced_outside(x)  # retraced: tf.function's cache key carries the context
    assert traced_outside.experimental_get_tracing_count() == 2
    with tb.portable_masks(8):
        want = forward(x)
    np.testing.assert_array_equal(got, want)

    @tf.function(jit_compile=True)
    def entered_inside(x, seed):
        with tb.portable_masks(seed):
            return forward(x)

    np.testing.assert_array_equal(entered_inside(x, tf.constant(8, tf.int64)), want)
    monkeypatch.undo()
    native = traced_outside(x)  # outside again: the first (native) graph, not the portable one
    assert traced_outside.experimental_get_tracing_count() == 2
    # Native masks equal the portable ones w.p. <= 0.7**120 at the first site alone.
    assert not np.array_equal(native[0], want[0])


def test_p9_tf_bad_input_one_clear_error_each(tfx):
    tf, tb = tfx
    with pytest.raises(ValueError, match=r"seed must be in \[0, 2\*\*64\), got -1"):
        tb.portable_masks(-1)

    @tf.function
    def float_seed(s):
        return tb.portable_masks(s)

    with pytest.raises(TypeError, match="seed must be an integer tensor, got dtype float32"):
        float_seed(tf.constant(1.0))

    @tf.function
    def vector_seed(s):
        return tb.portable_masks(s)

    with pytest.raises(TypeError, match="0-d integer tensor"):
        vector_seed(tf.constant([1, 2], tf.int64))

    @tf.function
    def nested(x, s):
        with tb.portable_masks(s):
            with tb.portable_masks(s):
                return x

    with pytest.raises(RuntimeError, match="nesting is not supported"):
        nested(_tf_x(), tf.constant(1, tf.int64))


# --- threads -----------------------------------------------------------------------------------


def _in_threads(work, seeds):
    """Run ``work(seed)`` in one thread per seed, started together; return results by seed."""
    import threading

    barrier, results, errors = threading.Barrier(len(seeds)), {}, []

    def run(seed):
        try:
            barrier.wait()
            results[seed] = work(seed)
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(s,)) for s in seeds]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return results


def test_p9_jax_threads_each_their_own_run_time_state(jx):
    jax, jb = jx
    forward, x = _jax_forward(), _jax_x()
    compiled = jax.jit(forward)

    def work(seed):
        with jb.portable_masks(seed):
            return [compiled(x) for _ in range(2)]

    got = _in_threads(work, (31, 32))
    for seed, outs in got.items():
        with jb.portable_masks(seed):
            eager = [forward(x) for _ in range(2)]
        for k in range(2):
            for site in range(3):
                np.testing.assert_array_equal(outs[k][site], eager[k][site])


def test_p9_tf_threads_each_their_own_run_time_state(tfx):
    tf, tb = tfx
    forward, x = _tf_forward(), _tf_x()
    compiled = tf.function(forward)

    def work(seed):
        with tb.portable_masks(seed):
            return [compiled(x) for _ in range(2)]

    got = _in_threads(work, (31, 32))
    for seed, outs in got.items():
        with tb.portable_masks(seed):
            eager = [forward(x) for _ in range(2)]
        for k in range(2):
            np.testing.assert_array_equal(outs[k], eager[k])
