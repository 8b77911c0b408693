"""``portable_masks`` inside ``tf.function`` and Keras' compiled steps (SPEC P9).

Two ways a context meets a trace:

- entered INSIDE the traced function, ``seed`` may be a symbolic integer tensor
  (``int64``, or ``int32``; read as its 64 bits, a negative ``int64`` ``v``
  meaning ``v + 2**64``): the sites are numbered at trace time from 0 and the
  seed is an input of the graph, so one graph serves every seed;
- entered EAGERLY around calls of a compiled step (Keras ``fit`` and
  ``train_on_batch`` included): the seed and the count are two ``int64``
  ``tf.Variable`` s of this thread. A site traced inside the context reads the
  seed and ``assign_add`` s the count; TensorFlow's automatic control
  dependencies keep those in program order, so the graph numbers its sites when
  it runs, with or without ``jit_compile``. The k-th call continues where the
  (k-1)-th stopped, and a later context (it only reassigns the variables)
  reuses the graph with its own seed. Eager sites advance the same count.

The trace cache key: while a context is open, ``tf.function``'s cache key
(``function_context.make_function_context``) carries
``("dropout_ref.portable_masks", mode, thread)``. A function traced outside
any context (native masks) is traced again when called inside one, and one
traced inside is traced again outside. Concrete functions taken out of a
``tf.function`` (``get_concrete_function``, SavedModel) bypass the key: they
keep what they were traced with.
"""

from __future__ import annotations

import threading
from typing import Any

import tensorflow as tf
from tensorflow.python.eager.polymorphic_function import function_context

from dropout_ref.core.sites import (
    MAX_SITES,
    SITE_STRIDE,
    AttributePatch,
    PatchSet,
    SiteCounter,
    active,
)
from dropout_ref.core.validation import int64_bits, validate_seed

__all__ = ["COMPILED", "TfCompiledSites", "TfRunTimeSites"]

_STRIDE_BITS = SITE_STRIDE.bit_length() - 1


class TfRunTimeSites:
    """The run-time seed and count of one thread: ``int64`` variables that graphs capture."""

    def __init__(self) -> None:
        with tf.init_scope():
            self.seed = tf.Variable(0, dtype=tf.int64, trainable=False, name="portable_seed")
            self.counter = tf.Variable(0, dtype=tf.int64, trainable=False, name="portable_count")

    def start(self, seed: int) -> None:
        """Set the seed (as its 64 bits) and restart the count at 0."""
        self.seed.assign(int64_bits(seed))
        self.counter.assign(0)

    def count(self) -> int:
        """Return the count: every site numbered so far, compiled ones included."""
        return int(self.counter.numpy())

    def take(self) -> int:
        """Return the count for an eager site and advance it."""
        j = int(self.counter.numpy())
        if j >= MAX_SITES - 1:
            raise ValueError(f"portable_masks numbered {j} sites, the most it can number")
        self.counter.assign(j + 1)
        return j

    def traced(self, X: Any) -> bool:
        """Whether a graph is being traced (``X`` is then symbolic)."""
        return not tf.executing_eagerly()

    def draw(self) -> tuple[tf.Tensor, tf.Tensor]:
        """Read the seed, ``assign_add`` the count; return seed and offset ``j << 40``."""
        j = self.counter.assign_add(1, read_value=True) - 1
        return self.seed.read_value(), tf.bitwise.left_shift(j, tf.constant(_STRIDE_BITS, tf.int64))


def _cache_token() -> tuple[str, str, int] | None:
    counter = active()
    if counter is None or counter.backend != "tensorflow":
        return None
    mode = "inside-trace" if counter.in_trace else "eager"
    return ("dropout_ref.portable_masks", mode, threading.get_ident())


def _keyed_function_context(original):
    def make_function_context(scope_type=None):
        context = original(scope_type)
        token = _cache_token()
        if token is None:
            return context
        return context._replace(context=(context.context, token))

    make_function_context.__wrapped__ = original
    return make_function_context


def _key_patches() -> list[AttributePatch]:
    original = function_context.make_function_context
    return [
        AttributePatch(function_context, "make_function_context", _keyed_function_context(original))
    ]


class TfCompiledSites:
    """:class:`dropout_ref.core.sites.CompiledSites` for TensorFlow (see the module notes)."""

    def __init__(self) -> None:
        self._local = threading.local()
        self._key = PatchSet(_key_patches)

    def traced_seed(self, seed: Any) -> Any:
        """Check a symbolic seed (0-d ``int64``/``int32``); ``None`` if ``seed`` is not one."""
        if not isinstance(seed, (tf.Tensor, tf.Variable)):
            return None
        if not seed.dtype.is_integer:
            raise TypeError(
                f"portable_masks seed must be an integer tensor, got dtype {seed.dtype.name} "
                f"({seed!r}) (SPEC P9)"
            )
        if seed.shape.rank != 0:
            raise TypeError(
                f"portable_masks seed must be a 0-d integer tensor, got shape {seed.shape} "
                "(SPEC P9)"
            )
        if isinstance(seed, tf.Variable) or not tf.is_symbolic_tensor(seed):
            return validate_seed(int(seed.numpy()), "seed")
        return seed

    def tracing(self) -> bool:
        """Whether the context is entered while a graph is traced."""
        return not tf.executing_eagerly()

    def open(self, counter: SiteCounter, in_trace: bool) -> TfRunTimeSites | None:
        """Key traces by context; for an eager entry, this thread's variables set to the seed."""
        self._key.acquire()
        self._local.keyed = True
        if in_trace:
            return None
        runtime = getattr(self._local, "runtime", None)
        if runtime is None:
            runtime = self._local.runtime = TfRunTimeSites()
        runtime.start(counter.seed)
        return runtime

    def close(self, counter: SiteCounter) -> None:
        """Detach the run-time state; the last context restores the cache key."""
        counter.runtime = None
        if getattr(self._local, "keyed", False):
            self._local.keyed = False
            self._key.release()


#: The one instance the TensorFlow context uses.
COMPILED = TfCompiledSites()
