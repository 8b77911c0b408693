"""Benchmark cases for the tensorflow backend (see :mod:`dropout_ref.bench`)."""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf

from dropout_ref.bench.cases.common import (
    BASELINE,
    NATIVE,
    OURS,
    OURS_PORTABLE,
    OURS_PORTABLE_FUSED,
    BenchCase,
    CaseSet,
)
from dropout_ref.bench.mlp_epoch import epoch_cases
from dropout_ref.tensorflow import dropout_layer

SEED = 20240611
#: The framework keeps freed buffers, so peak memory is measured on a first call
#: in a fresh process (:mod:`dropout_ref.bench.fresh_memory`).
MEMORY_POOLED = True


def framework_version() -> str:
    """Return ``tf.__version__``."""
    return tf.__version__


def thread_count() -> int:
    """Return TensorFlow's intra-op thread count (0 means one per core)."""
    return tf.config.threading.get_intra_op_parallelism_threads()


def sync(result: Any) -> None:
    """Eager CPU ops return when done; touching the buffer makes sure of it."""
    result.numpy()


def make_cases(size: int, dtype: str, *, fused: bool, rate: float) -> CaseSet:
    """Return the cases of one (size, dtype) point."""
    X = tf.constant(np.random.default_rng(0).standard_normal(size).astype(dtype))
    nbytes = size * X.dtype.size
    cases = [
        BenchCase(BASELINE, lambda: X * 2.0, sync=sync, output_bytes=nbytes, note="X * 2.0"),
        BenchCase(NATIVE, lambda: tf.nn.dropout(X, rate), sync=sync, output_bytes=nbytes,
                  note="tf.nn.dropout"),
        BenchCase(OURS, lambda: dropout_layer(X, rate), sync=sync, output_bytes=nbytes,
                  note="dropout_layer(X, p)"),
        BenchCase(OURS_PORTABLE, lambda: dropout_layer(X, rate, seed=SEED), sync=sync,
                  output_bytes=nbytes,
                  note="dropout_layer(X, p, seed=s): TensorFlow's stateless Philox kernel "
                  "below FUSE_MIN_SIZE, two XLA programs from there"),
    ]
    if fused:
        jitted = tf.function(lambda x: dropout_layer(x, rate, seed=SEED), jit_compile=True)
        cases.append(BenchCase(OURS_PORTABLE_FUSED, lambda: jitted(X), sync=sync,
                               output_bytes=nbytes, compiled=True,
                               note="tf.function(jit_compile=True) around dropout_layer"))
    return CaseSet(cases)


def native_dropout_layer(X: Any, dropout: float, *, seed=None, offset=0) -> Any:
    """``dropout_layer``'s signature over ``tf.nn.dropout``."""
    return tf.nn.dropout(X, rate=dropout)


def mlp_epoch_cases() -> CaseSet:
    """One epoch of the course MLP with our dropout_layer and with the native dropout."""
    return epoch_cases(
        "tensorflow", native_dropout_layer, "tf.nn.dropout", ours_note="tf.function step"
    )


def compiled_loop(steps: int, device: str = "cpu") -> dict[str, Any]:
    """Run the compiled-loop benchmark (:mod:`dropout_ref.bench.compiled_loop`) in TensorFlow.

    The step is the course's XLA-compiled ``tf.function`` step with an ``int64`` seed tensor and
    float64 rate tensors; programs are its ``experimental_get_tracing_count()``.
    """
    from dropout_ref.bench.compiled_loop import WARMUP, loop_inputs, summary, time_steps
    from dropout_ref.course.tensorflow.training import _graph_step, _step, runtime_rates
    from dropout_ref.models.tensorflow.mlp import MLP

    inputs = loop_inputs(steps)
    with tf.device(device):
        X, y = tf.constant(inputs.images), tf.constant(inputs.labels)
        lr = tf.constant(inputs.lr, tf.float32)
        runtime_model, constant_model, seeded_model = MLP(rng=0), MLP(rng=0), MLP(rng=0)
    step = _graph_step(runtime_model)
    constant_step = tf.function(
        lambda X, y, lr: _step(constant_model, X, y, lr, 1234, None), jit_compile=True
    )

    def run_runtime(i: int) -> None:
        seed = tf.constant(inputs.seeds[i], tf.int64)
        step(X, y, lr, seed, runtime_rates(inputs.rates[i])).numpy()

    def run_constant(i: int) -> None:
        constant_step(X, y, lr).numpy()

    seeded_step = _graph_step(seeded_model)

    def run_seeded(i: int) -> None:
        seeded_step(X, y, lr, tf.constant(inputs.seeds[i], tf.int64), None).numpy()

    for i in range(WARMUP):
        run_runtime(i)
    warm = step.experimental_get_tracing_count()
    runtime = time_steps(run_runtime, steps)
    after = step.experimental_get_tracing_count()
    for i in range(WARMUP):
        run_constant(i)
        run_seeded(i)
    constant, seeded = time_steps(run_constant, steps), time_steps(run_seeded, steps)
    runtime += time_steps(run_runtime, steps)
    constant += time_steps(run_constant, steps)
    seeded += time_steps(run_seeded, steps)
    return summary(after, runtime, constant, seeded, recompiles_in_loop=after - warm,
                   counter="tf.function.experimental_get_tracing_count()")
