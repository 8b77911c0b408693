"""The jax backend's own surface: ``key=`` (D9 as amended for JAX), jit, grad, vmap, x64 (D7)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

jax = pytest.importorskip("jax")
jnp = pytest.importorskip("jax.numpy")

from dropout_ref.conformance.stats import binomial_count_interval  # noqa: E402
from dropout_ref.jax import dropout_layer  # noqa: E402
from dropout_ref.numpy import dropout_layer as numpy_dropout_layer  # noqa: E402

ALPHA = 1e-6


def test_d9_jax_neither_key_nor_seed_is_a_type_error():
    """D9 (JAX): no global generator, so a call without key= or seed= says what to pass."""
    X = jnp.ones(8)
    for rate in (0.0, 0.5, 1.0):  # refused whatever the rate: no program works only at p=0
        with pytest.raises(TypeError, match=r"key=.*seed="):
            dropout_layer(X, rate)


def test_d9_jax_key_and_seed_together_refused():
    with pytest.raises(TypeError, match="not both"):
        dropout_layer(jnp.ones(8), 0.5, key=jax.random.key(0), seed=1)


@pytest.mark.parametrize("bad", [0, "key", np.array([1, 2], np.uint32), jnp.zeros(3, jnp.uint32)])
def test_d9_jax_bad_key_refused_naming_it(bad):
    with pytest.raises(TypeError, match=r"key must be one jax\.random key"):
        dropout_layer(jnp.ones(8), 0.5, key=bad)


def test_d9_jax_same_key_same_mask_split_keys_fresh():
    """D9 (JAX): the same key gives the same mask; split keys give fresh ones; legacy keys work."""
    X = jnp.ones(20_000)
    key = jax.random.key(7)
    a = np.asarray(dropout_layer(X, 0.5, key=key))
    np.testing.assert_array_equal(a, np.asarray(dropout_layer(X, 0.5, key=key)))
    k1, k2 = jax.random.split(key)
    b = np.asarray(dropout_layer(X, 0.5, key=k1))
    c = np.asarray(dropout_layer(X, 0.5, key=k2))
    # Two independent masks of 20000 elements agree with probability 2**-20000.
    assert not np.array_equal(a, b) and not np.array_equal(b, c)
    legacy = np.asarray(dropout_layer(X, 0.5, key=jax.random.PRNGKey(7)))
    assert set(np.unique(legacy)) <= {0.0, 2.0}


def test_d4_jax_keyed_mask_is_bits_at_least_word_threshold():
    """D4 (JAX, key=): keep iff the 32-bit word of jax.random.bits >= ceil(p * 2**32)."""
    from dropout_ref.core.thresholds import word_threshold

    key, rate = jax.random.key(3), 0.3
    out = np.asarray(dropout_layer(jnp.ones((300, 200)), rate, key=key))
    words = np.asarray(jax.random.bits(key, (300, 200), dtype=jnp.uint32)).astype(np.uint64)
    np.testing.assert_array_equal(out != 0, words >= word_threshold(rate))
    n = out.size
    assert int(np.count_nonzero(out)) in binomial_count_interval(n, 1 - rate, ALPHA)


def test_g1_jax_jit_matches_eager_bit_for_bit():
    """Under jax.jit (rate, seed, offset static) the portable mask equals the eager one."""
    X = jnp.asarray(np.random.default_rng(0).uniform(0.5, 2, (33, 17)).astype(np.float32))
    jitted = jax.jit(dropout_layer, static_argnames=("dropout", "seed", "offset"))
    for offset in (0, 3, 4 * (2**32 - 1) + 2):  # block counters that carry into c1
        eager = np.asarray(dropout_layer(X, 0.4, seed=9, offset=offset))
        got = jitted(X, dropout=0.4, seed=9, offset=offset)
        np.testing.assert_array_equal(np.asarray(got), eager)
        oracle = numpy_dropout_layer(np.asarray(X), 0.4, seed=9, offset=offset)
        np.testing.assert_array_equal(eager == 0, oracle == 0)
    keyed = jax.jit(lambda x, k: dropout_layer(x, 0.4, key=k))
    key = jax.random.key(1)
    np.testing.assert_array_equal(
        np.asarray(keyed(X, key)), np.asarray(dropout_layer(X, 0.4, key=key))
    )


@pytest.mark.parametrize("mode", ["key", "seed"])
def test_d8_jax_grad_under_jit_uses_the_forward_mask(mode):
    """D8: jax.grad (inside jax.jit) is keep * G / (1 - p) with the forward's mask."""
    X = jnp.asarray(np.random.default_rng(1).uniform(1, 2, (64, 33)).astype(np.float32))
    G = jnp.asarray(np.random.default_rng(2).normal(size=(64, 33)).astype(np.float32))
    kwargs = {"key": jax.random.key(5)} if mode == "key" else {"seed": 5, "offset": 11}

    def loss(x):
        return jnp.sum(dropout_layer(x, 0.25, **kwargs) * G)

    grad = np.asarray(jax.jit(jax.grad(loss))(X))
    keep = np.asarray(dropout_layer(X, 0.25, **kwargs)) != 0
    np.testing.assert_array_equal(grad[~keep], 0.0)
    np.testing.assert_allclose(grad[keep], np.asarray(G)[keep] / 0.75, rtol=1e-6)


def test_jax_vmap_over_keys_gives_one_mask_per_example():
    """vmap: a batch of keys gives independent masks; the portable mask is per example shape."""
    X = jnp.ones((4, 1000))
    keys = jax.random.split(jax.random.key(0), 4)
    out = np.asarray(jax.vmap(lambda k, x: dropout_layer(x, 0.5, key=k))(keys, X))
    for i in range(4):
        np.testing.assert_array_equal(out[i], np.asarray(dropout_layer(X[i], 0.5, key=keys[i])))
    assert not np.array_equal(out[0], out[1])
    seeded = np.asarray(jax.vmap(lambda x: dropout_layer(x, 0.5, seed=3))(X))
    row = numpy_dropout_layer(np.ones(1000, np.float32), 0.5, seed=3)
    for i in range(4):
        np.testing.assert_array_equal(seeded[i], row)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32"])
def test_d7_p2_jax_16_bit_dtypes_same_portable_mask(dtype):
    X = jnp.ones((50, 40), dtype=dtype)
    out = dropout_layer(X, 0.3, seed=2**64 - 1, offset=2**63)
    assert out.dtype == X.dtype and out.shape == X.shape
    oracle = numpy_dropout_layer(np.ones((50, 40), np.float32), 0.3, seed=2**64 - 1, offset=2**63)
    np.testing.assert_array_equal(np.asarray(out.astype(jnp.float32)) == 0, oracle == 0)


def test_d7_jax_float64_with_x64_and_32_bit_words_without(tmp_path):
    """float64 where jax_enable_x64 is on; the portable mask never needs 64-bit integers.

    Two fresh interpreters (x64 is process-wide at start-up): with x64 the float64
    path, keyed and portable; without it, the same portable mask from uint32 words.
    """
    code = (
        "import jax, jax.numpy as jnp, numpy as np\n"
        "from dropout_ref.jax import BACKEND, dropout_layer\n"
        "from dropout_ref.numpy import dropout_layer as ref\n"
        "x64 = jax.config.jax_enable_x64\n"
        "dt = jnp.float64 if x64 else jnp.float32\n"
        "X = jnp.asarray(np.linspace(0.5, 2, 4099), dtype=dt)\n"
        "out = dropout_layer(X, 0.3, seed=12345, offset=2**40 + 1)\n"
        "assert out.dtype == dt, out.dtype\n"
        "want = ref(np.asarray(X), 0.3, seed=12345, offset=2**40 + 1)\n"
        "assert np.array_equal(np.asarray(out), want.astype(np.asarray(out).dtype)) or x64\n"
        "assert np.array_equal(np.asarray(out) == 0, want == 0)\n"
        "k = dropout_layer(X, 0.3, key=jax.random.key(0))\n"
        "assert k.dtype == dt\n"
        "print('float64' in BACKEND.arrays.float_dtypes, out.dtype)\n"
    )
    seen = []
    for flag in ("1", "0"):
        done = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            timeout=300,
            env={**__import__("os").environ, "JAX_ENABLE_X64": flag},
        )
        assert done.returncode == 0, done.stderr[-2000:]
        seen.append(done.stdout.split())
    assert seen == [["True", "float64"], ["False", "float32"]]


def test_s1_jax_traced_rate_and_seed_run_compiled():
    """S1/S2 (superseding the static-rate rule): traced rates and seeds work under jit.

    A traced rate or seed equals the eager call with the Python value; a traced
    rate of an integer dtype is refused naming dropout, not with a JAX error.
    """
    key = jax.random.key(0)
    f = jax.jit(lambda x, p: dropout_layer(x, p, key=key))
    np.testing.assert_array_equal(f(jnp.ones(4), 0.5), dropout_layer(jnp.ones(4), 0.5, key=key))
    g = jax.jit(lambda x, s: dropout_layer(x, 0.5, seed=s))
    np.testing.assert_array_equal(g(jnp.ones(4), 3), dropout_layer(jnp.ones(4), 0.5, seed=3))
    with pytest.raises(TypeError, match="dropout must be a floating 0-d array"):
        f(jnp.ones(4), jnp.int32(1))


def test_e1_jax_install_command_is_the_pinned_environment():
    """E1: the install command names the versions pinned in backends/jax/requirements.txt."""
    from pathlib import Path

    from dropout_ref.core.registry import backend_info

    pins = (Path(__file__).resolve().parents[1] / "backends/jax/requirements.txt").read_text()
    command = backend_info("jax").install
    for pin in ("jax[cpu]==0.10.2", "flax==0.12.8"):
        assert pin in pins.splitlines() and f'"{pin}"' in command


def test_e1_backends_command_shows_the_install_command_verbatim(capsys):
    """``dropout-ref backends``: "jax[cpu]" is printed as text, not eaten as rich markup."""
    from dropout_ref.cli import main as cli

    assert cli.main(["backends"]) == 0
    assert "jax[cpu]==0.10.2" in capsys.readouterr().out


def test_m2_jax_dropout_module_follows_nnx_idiom():
    """dropout_ref.jax.Dropout: nnx.Dropout's interface around our dropout_layer (M2, M4)."""
    from flax import nnx

    from dropout_ref.jax import Dropout

    X = jnp.ones((8, 50))
    layer = Dropout(0.5, offset=7, rngs=nnx.Rngs(dropout=3))
    first, second = np.asarray(layer(X)), np.asarray(layer(X))
    assert not np.array_equal(first, second)  # the Rngs stream advances: fresh masks
    np.testing.assert_array_equal(
        np.asarray(layer(X, mask_seed=5)), np.asarray(dropout_layer(X, 0.5, seed=5, offset=7))
    )
    layer.eval()
    np.testing.assert_array_equal(np.asarray(layer(X)), np.asarray(X))
    with pytest.raises(TypeError, match=r"rngs=nnx\.Rngs"):
        Dropout(0.5)(X)
