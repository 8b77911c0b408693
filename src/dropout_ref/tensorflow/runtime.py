"""Runtime rates, seeds and offsets inside ``tf.function`` (SPEC S1, S2).

Inside a ``tf.function`` (with or without ``jit_compile``) a tensor rate or
seed is symbolic: the graph computes the threshold and the scale in float64
(:func:`dropout_ref.core.runtime.runtime_rate`) and draws the Philox words
with the key and counters as tensors, so one concrete function serves every
value and the output equals the eager call with ``float(r)``/``int(seed)``
bit for bit.

Seeds and offsets are ``int64`` (or ``int32``) tensors read as their bits:
``[0, 2**63)`` directly, a negative ``int64`` ``v`` meaning ``v + 2**64``. An
invalid rate (NaN, < 0, > 1) raises ``InvalidArgumentError`` through
``tf.debugging.Assert`` in graph mode; XLA (``jit_compile=True``) has no
run-time assertions and skips it, and the output is then all NaN.
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf

from dropout_ref.core.layer import mask_template
from dropout_ref.core.philox import MASK32
from dropout_ref.core.runtime import python_rate, runtime_rate
from dropout_ref.core.thresholds import scale_compute_dtype
from dropout_ref.core.validation import int64_bits
from dropout_ref.tensorflow import native
from dropout_ref.tensorflow.device import on_device_of

INVALID_RATE = "dropout must satisfy 0 <= dropout <= 1 (a runtime rate was NaN, negative or > 1)"


class TensorflowMath:
    """:class:`dropout_ref.core.runtime.RateMath` for TensorFlow tensors.

    ``zero`` is an ``int64`` 0-d tensor that is 0 whenever the result matters,
    computed at run time (see :meth:`barrier`).
    """

    def __init__(self, zero: Any) -> None:
        self.zero = zero

    def cast(self, x: Any, dtype: str) -> tf.Tensor:
        """Return ``tf.cast(x, dtype)``."""
        return tf.cast(x, dtype)

    def ceil(self, x: Any) -> tf.Tensor:
        """Return ``tf.math.ceil(x)``."""
        return tf.math.ceil(x)

    def where(self, cond: Any, a: Any, b: Any) -> tf.Tensor:
        """Return ``tf.where(cond, a, b)``."""
        return tf.where(cond, a, b)

    def zeros_like(self, x: Any) -> tf.Tensor:
        """Return ``tf.zeros_like(x)``."""
        return tf.zeros_like(x)

    def nextafter(self, x: Any, up: Any) -> tf.Tensor:
        """Return the float next to ``x`` towards +inf where ``up``, else towards -inf."""
        inf = tf.constant(float("inf"), x.dtype)
        return tf.math.nextafter(x, tf.where(up, inf, -inf))

    def barrier(self, x: Any) -> tf.Tensor:
        """Return ``x`` (float64) through a bit round trip XLA's simplifier cannot see through.

        TensorFlow has no optimization barrier outside XLA's own ops: the bits
        of ``x`` are shifted by ``zero``, data the compiler cannot fold.
        """
        bits = tf.bitcast(x, tf.int64)
        return tf.bitcast(tf.bitwise.right_shift(bits, self.zero), tf.float64)


def is_runtime(value: Any) -> bool:
    """Return whether ``value`` is a symbolic tensor (inside ``tf.function``)."""
    return isinstance(value, (tf.Tensor, tf.Variable)) and not tf.executing_eagerly()


def _scalar(value: Any, name: str, kind: str) -> tf.Tensor:
    """Check a 0-d tensor of ``kind`` ("float" or "int")."""
    value = tf.convert_to_tensor(value)
    if value.shape.rank != 0:
        raise TypeError(f"{name} must be a 0-d tensor, got shape {value.shape}")
    ok = value.dtype.is_floating if kind == "float" else value.dtype.is_integer
    if not ok:
        wanted = "a floating" if kind == "float" else "an integer"
        raise TypeError(f"{name} must be {wanted} 0-d tensor, got dtype {value.dtype.name}")
    return value


def _int64(value: Any, name: str) -> tf.Tensor:
    """Return a checked Python int (as its 64 bits) or a 0-d integer tensor as ``int64``."""
    if isinstance(value, int):
        return tf.constant(int64_bits(value), tf.int64)
    return tf.cast(_scalar(value, name, "int"), tf.int64)


def keep_words(template: Any, seed: Any, offset: Any, threshold: Any) -> tf.Tensor:
    """Return P3's keep decision ``w >= threshold`` of each element of ``template`` (bool).

    TensorFlow's own stateless Philox kernel draws the words with the key and the
    counter as run-time tensors (:func:`dropout_ref.tensorflow.native.runtime_keep`):
    one op in a graph, XLA's Philox under ``jit_compile=True``, one program for
    every seed and offset. ``threshold`` is an ``int64`` tensor below ``2**32``,
    compared as ``uint32`` (the words are never widened).
    """
    size = template.shape.num_elements()
    count = size if size is not None else tf.size(template, out_type=tf.int64)
    keep = native.runtime_keep(
        count, _int64(seed, "seed"), _int64(offset, "offset"), tf.cast(threshold, tf.uint32)
    )
    return tf.reshape(keep, tf.shape(template))


def runtime_dropout(X: Any, rate: Any, seed: Any, offset: Any, noise: Any, key: Any) -> tf.Tensor:
    """Dropout with a symbolic rate, seed or offset; see the module notes (SPEC S1, S2)."""
    template = mask_template(X, noise)
    compute = tf.as_dtype(scale_compute_dtype(X.dtype.name))
    with on_device_of(X):
        invalid = None
        if isinstance(rate, float):
            threshold_int, scale64 = python_rate(rate)
            drop_all = tf.constant(threshold_int > MASK32)
            threshold = tf.constant(0 if threshold_int > MASK32 else threshold_int, tf.int64)
            scale = tf.cast(tf.constant(scale64, tf.float64), compute)
            rate64 = tf.constant(rate, tf.float64)
        else:
            rate = _scalar(rate, "dropout", "float")
            # Shift by 0, or by 1 for a NaN rate, whose output is NaN anyway.
            math_ns = TensorflowMath(tf.cast(tf.math.is_nan(rate), tf.int64))
            terms = runtime_rate(rate, "float64", math_ns)
            drop_all, invalid = terms.drop_all, terms.invalid
            tf.debugging.Assert(tf.logical_not(invalid), [INVALID_RATE, rate])
            threshold = tf.cast(terms.threshold, tf.int64)
            scale = tf.cast(terms.scale, compute)
            rate64 = terms.rate
        if seed is None:
            # TensorFlow's generator, float32 uniforms against the smallest float32 >= r.
            t32 = tf.cast(rate64, tf.float32)
            t32 = tf.where(tf.cast(t32, tf.float64) < rate64,
                           tf.math.nextafter(t32, tf.constant(float("inf"))), t32)
            keep = tf.random.uniform(tf.shape(template), dtype=tf.float32) >= t32
        else:
            keep = keep_words(template, seed, offset, threshold)
        keep = tf.logical_and(keep, tf.logical_not(drop_all))
        scaled = tf.cast(tf.cast(X, compute) * scale, X.dtype)
        out = tf.where(keep, scaled, tf.zeros((), X.dtype))
        if invalid is not None:
            out = tf.where(invalid, tf.constant(float("nan"), X.dtype), out)
        return out
