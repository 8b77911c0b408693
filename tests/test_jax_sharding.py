"""SPEC P7 on JAX: under ``jax.jit`` with a ``NamedSharding`` over 8 host CPU devices.

The mask of an element is a function of its global index, so XLA's SPMD
partitioning of the jitted mask (each device computes its shard's counters)
gives the unsharded result bit for bit, for every sharding, with and without
``noise_shape``; the gradient follows the same mask. The check runs in a
subprocess because ``XLA_FLAGS=--xla_force_host_platform_device_count=8``
must be set before JAX starts.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("jax")

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = textwrap.dedent(
    """
    import jax
    import jax.numpy as jnp
    import numpy as np
    from jax.sharding import AxisType, NamedSharding, PartitionSpec as P

    from dropout_ref.jax import dropout_layer
    from dropout_ref.numpy import dropout_layer as numpy_dropout_layer

    assert jax.device_count() == 8, jax.devices()
    RATE, SEED, OFFSET = 0.4, 2**40 + 3, 5
    x = np.random.default_rng(0).uniform(0.5, 2.0, size=(16, 8, 24)).astype(np.float32)
    g = np.random.default_rng(1).normal(size=x.shape).astype(np.float32)
    # Auto axes: XLA's SPMD partitioner shards the jitted computation as the inputs are.
    mesh1 = jax.make_mesh((8,), ("d",), axis_types=(AxisType.Auto,))
    mesh2 = jax.make_mesh((4, 2), ("a", "b"), axis_types=(AxisType.Auto,) * 2)
    specs = [
        (mesh1, P("d")), (mesh1, P(None, "d")), (mesh1, P(None, None, "d")),
        (mesh1, P()), (mesh2, P("a", "b")), (mesh2, P("b", None, "a")),
        (mesh2, P(None, ("a", "b"))),
    ]
    checked = 0
    for noise in [None, (16, 1, 24), (1, 8, None)]:
        expected = numpy_dropout_layer(x, RATE, seed=SEED, offset=OFFSET, noise_shape=noise)
        fn = jax.jit(lambda t: dropout_layer(t, RATE, seed=SEED, offset=OFFSET, noise_shape=noise))
        grad = jax.jit(jax.grad(lambda t: (fn(t) * g).sum()))
        plain = np.asarray(fn(jnp.asarray(x)))
        assert np.array_equal(plain == 0, expected == 0), noise
        for mesh, spec in specs:
            xs = jax.device_put(x, NamedSharding(mesh, spec))
            out = fn(xs)
            assert len(out.sharding.device_set) == 8 or spec == P(), (spec, out.sharding)
            got = np.asarray(out)
            assert np.array_equal(got, plain), (noise, spec, int((got != plain).sum()))
            want = np.where(expected != 0, g / np.float32(1 - RATE), 0)
            np.testing.assert_allclose(np.asarray(grad(xs)), want, rtol=1e-6, err_msg=str(spec))
            checked += 1
    print(f"SHARDING OK {checked}")
    """
)


def test_p7_jax_named_sharding_equals_unsharded(tmp_path):
    """P7: sharded inputs (1-D and 2-D meshes, any dims, replicated) give the unsharded output."""
    script = tmp_path / "sharding_check.py"
    script.write_text(SCRIPT)
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT / "src"),
        "XLA_FLAGS": "--xla_force_host_platform_device_count=8",
        "JAX_PLATFORMS": "cpu",
    }
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "SHARDING OK 21" in done.stdout, done.stdout
