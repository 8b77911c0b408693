"""Benchmark cases for the jax backend (see :mod:`dropout_ref.bench`).

JAX has no global generator: the default mode is ``key=`` (compared with
``flax.nnx.Dropout``, which draws from a key as well), the portable mode is
``seed=`` (compared with ``X * 2.0``, the cost of one pass over ``X``). Every
case is one ``jax.jit`` program, as JAX code runs.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from dropout_ref.bench.cases.common import (
    BASELINE,
    NATIVE,
    NATIVE_EAGER,
    OURS,
    OURS_PORTABLE,
    OURS_PORTABLE_EAGER,
    BenchCase,
    CaseSet,
)
from dropout_ref.jax import dropout_layer

SEED = 20240611


def framework_version() -> str:
    """Return ``jax.__version__``."""
    return jax.__version__


def thread_count() -> int:
    """Return the CPU cores XLA may use (it sizes its pool by the cores)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def sync(result: Any) -> None:
    """Wait for JAX's asynchronous dispatch."""
    jax.block_until_ready(result)


def random_dropout(X: Any, rate: float, key: Any) -> Any:
    """Dropout with ``jax.random`` as JAX code writes it (``flax.nnx.Dropout``'s rule)."""
    keep = jax.random.bernoulli(key, 1.0 - rate, X.shape)
    return jnp.where(keep, X / (1.0 - rate), jnp.zeros((), X.dtype))


def make_cases(size: int, dtype: str, *, fused: bool, rate: float) -> CaseSet:
    """Return the cases of one (size, dtype) point (jitted, and two eager cases)."""
    X = jnp.asarray(np.random.default_rng(0).standard_normal(size).astype(dtype))
    nbytes = size * X.dtype.itemsize
    key = jax.random.key(SEED)
    native = nnx.Dropout(rate, rngs=nnx.Rngs(dropout=SEED))

    baseline = jax.jit(lambda x: x * 2.0)
    ours = jax.jit(lambda x, k: dropout_layer(x, rate, key=k))
    portable = jax.jit(lambda x: dropout_layer(x, rate, seed=SEED))
    native_fn = nnx.jit(lambda module, x: module(x, deterministic=False))
    cases = [
        BenchCase(BASELINE, lambda: baseline(X), sync=sync, output_bytes=nbytes, compiled=True,
                  note="jax.jit(X * 2.0)"),
        BenchCase(NATIVE, lambda: native_fn(native, X), sync=sync, output_bytes=nbytes,
                  compiled=True, note="nnx.jit(flax.nnx.Dropout)"),
        BenchCase(OURS, lambda: ours(X, key), sync=sync, output_bytes=nbytes, compiled=True,
                  note="jax.jit(dropout_layer(X, p, key=k))"),
        BenchCase(OURS_PORTABLE, lambda: portable(X), sync=sync, output_bytes=nbytes,
                  compiled=True, note="jax.jit(dropout_layer(X, p, seed=s))"),
        # Eager, op by op as JAX dispatches it: the portable mode against jax.random.
        BenchCase(NATIVE_EAGER, lambda: random_dropout(X, rate, key), sync=sync,
                  output_bytes=nbytes, note="jax.random.bernoulli + where, eager"),
        BenchCase(OURS_PORTABLE_EAGER, lambda: dropout_layer(X, rate, seed=SEED), sync=sync,
                  output_bytes=nbytes, note="dropout_layer(X, p, seed=s), eager"),
    ]
    return CaseSet(cases)


def compiled_loop(steps: int, device: str = "cpu") -> dict[str, Any]:
    """Run the compiled-loop benchmark (:mod:`dropout_ref.bench.compiled_loop`) in JAX.

    The seeded step is the course's ``nnx.jit`` step with a traced ``uint32[2]`` seed
    and traced float32 rates; programs are its ``jax.jit`` cache size. Also times
    the key-mode step (the masks' keys from ``nnx.Rngs``) against the seeded step
    with the model's own rates, the issue's target for the seeded JAX step.
    """
    from dropout_ref.bench.compiled_loop import WARMUP, loop_inputs, summary, time_steps
    from dropout_ref.course.jax.training import _compiled_seeded_step, _compiled_step, _update
    from dropout_ref.jax.runtime import seed_words
    from dropout_ref.models.jax.mlp import MLP

    inputs = loop_inputs(steps)
    X, y = jnp.asarray(inputs.images), jnp.asarray(inputs.labels.astype(np.int32))
    lr = jnp.float32(inputs.lr)
    runtime_model, constant_model = MLP(rng=0), MLP(rng=0)
    seeded_model, keyed_model = MLP(rng=0), MLP(rng=0)
    for model in (runtime_model, constant_model, seeded_model, keyed_model):
        model.train()
    constant_step = nnx.jit(lambda m, X, y, lr: _update(m, X, y, lr, 1234, None))

    def run_runtime(i: int) -> None:
        rates = tuple(jnp.float32(r) for r in inputs.rates[i])
        float(_compiled_seeded_step(runtime_model, X, y, lr, seed_words(inputs.seeds[i]), rates))

    def run_constant(i: int) -> None:
        float(constant_step(constant_model, X, y, lr))

    def run_seeded(i: int) -> None:
        float(_compiled_seeded_step(seeded_model, X, y, lr, seed_words(inputs.seeds[i]), None))

    def run_keyed(i: int) -> None:
        float(_compiled_step(keyed_model, X, y, lr, None))

    cache = _compiled_seeded_step.jitted_fn
    before = cache._cache_size()
    for i in range(WARMUP):
        run_runtime(i)
    warm = cache._cache_size()
    runtime = time_steps(run_runtime, steps)
    after = cache._cache_size()
    for run in (run_constant, run_seeded, run_keyed):
        for i in range(WARMUP):
            run(i)
    constant = time_steps(run_constant, steps)
    seeded, keyed = time_steps(run_seeded, steps), time_steps(run_keyed, steps)
    runtime += time_steps(run_runtime, steps)
    constant += time_steps(run_constant, steps)
    seeded += time_steps(run_seeded, steps)
    keyed += time_steps(run_keyed, steps)
    seeded_ms, keyed_ms = (float(np.median(t)) * 1e3 for t in (seeded, keyed))
    return summary(after - before, runtime, constant, seeded, recompiles_in_loop=after - warm,
                   key_step_ms=keyed_ms, seeded_over_key=seeded_ms / keyed_ms,
                   counter="jax.jit _cache_size() of the seeded nnx.jit step")


class _NativeDropout(nnx.Module):
    """``flax.nnx.Dropout`` behind the course ``Dropout``'s call signature."""

    def __init__(self, rate: float, rngs: nnx.Rngs) -> None:
        self.inner = nnx.Dropout(rate, rngs=rngs)

    def __call__(self, x: jax.Array, *, mask_seed: Any = None, rate: Any = None) -> jax.Array:
        return self.inner(x)


def native_gpt_model(model: Any) -> Any:
    """Return the course GPT with ``flax.nnx.Dropout`` at every site, in place.

    A module of another class changes the model's graph definition, so the
    ``nnx.jit`` step compiles a program of its own for it (patching
    ``dropout_layer`` would reuse the program traced with ours).
    """
    rngs = nnx.Rngs(dropout=SEED)
    model.drop = _NativeDropout(model.drop.rate, rngs)
    for block in model.h:
        attn, mlp = block.attn, block.mlp
        attn.attn_dropout = _NativeDropout(attn.attn_dropout.rate, rngs)
        attn.resid_dropout = _NativeDropout(attn.resid_dropout.rate, rngs)
        mlp.dropout = _NativeDropout(mlp.dropout.rate, rngs)
    return model
