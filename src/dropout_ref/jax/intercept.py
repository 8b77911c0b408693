"""``dropout_ref.jax.portable_masks(seed)``: Flax's dropouts draw portable masks (SPEC P8).

While a context is open in some thread, ``flax.nnx.Dropout.__call__`` and
``flax.linen.Dropout.__call__`` are replaced (process-wide; in a thread without
a context the replacement calls the original, so other threads keep native
dropout). A call in training mode (``deterministic`` resolved False: the call's
flag, else the layer's, as Flax resolves it; ``model.train()`` in NNX) is a
site, rate 0 included; ``broadcast_dims`` (the axes sharing one decision)
become SPEC D12's noise shape. The layer's random stream is not consumed inside
the context. Eval-mode calls run Flax's own code and take no number. Flax's
attention-weight dropout (``dot_product_attention_weights`` in linen and nnx,
the functions and modules built on it, and modules that imported it by name)
is a door too: see :mod:`dropout_ref.jax.intercept_attention`.

JAX has no dropout function of its own (``jax.random.bernoulli`` is a random
draw, not a dropout), so hand-written dropouts are not seen. Under ``jax.jit``
/ ``nnx.jit`` the context works both ways (SPEC P9, :mod:`dropout_ref.jax.compiled_sites`):
entered inside the traced function (the seed may be traced), or entered eagerly
around a compiled step, whose sites then read the context's run-time seed and
count. Under ``jax.vmap`` a call is refused with ``RuntimeError``.
Keras 3 on its JAX backend (``KERAS_BACKEND=jax``) joins this context: the doors
of :mod:`dropout_ref.doors.keras3`.
"""

from __future__ import annotations

from typing import Any

from dropout_ref.core.doors import Door
from dropout_ref.core.sites import AttributePatch, PatchSet, PortableMasks, active
from dropout_ref.doors.keras3 import keras3_doors, keras3_patches
from dropout_ref.jax import dropout_layer
from dropout_ref.jax.compiled_sites import COMPILED, refuse_vmap
from dropout_ref.jax.intercept_attention import ATTENTION_DOORS, attention_patches

__all__ = ["DOORS", "portable_masks"]

#: Every door of Flax's dropouts and what the context does with it (SPEC P8).
DOORS: tuple[Door, ...] = (
    Door(
        "flax.nnx.Dropout", "site",
        "deterministic resolved False; broadcast_dims -> noise; under jit too (P9), not vmap",
    ),
    Door(
        "flax.linen.Dropout", "site",
        "deterministic resolved False; broadcast_dims -> noise; under jit too (P9), not vmap",
    ),
    *ATTENTION_DOORS,
    *keras3_doors("jax"),
)


def _check_concrete(inputs: Any, source: str) -> None:
    """Refuse what the context cannot number (``vmap``); ``jit`` traces are sites (SPEC P9)."""
    refuse_vmap(inputs, source)


def _noise_shape(shape: tuple[int, ...], broadcast_dims: Any) -> tuple[int, ...] | None:
    dims = tuple(broadcast_dims or ())
    if not dims:
        return None
    shared = {d % len(shape) for d in dims}
    return tuple(1 if i in shared else int(s) for i, s in enumerate(shape))


def _nnx_call(original):
    from flax.nnx.module import first_from

    def __call__(self, inputs, *, deterministic=None, rngs=None):  # noqa: N807
        counter = active()
        if counter is None:
            return original(self, inputs, deterministic=deterministic, rngs=rngs)
        resolved = first_from(
            deterministic, self.deterministic,
            error_msg="No `deterministic` argument was provided to Dropout (nnx.Dropout needs "
            "deterministic= in its constructor or call, or model.train()/model.eval())",
        )
        if resolved:
            return original(self, inputs, deterministic=deterministic, rngs=rngs)
        _check_concrete(inputs, "flax.nnx.Dropout")
        return counter.apply(
            dropout_layer, inputs, self.rate, source="flax.nnx.Dropout",
            noise_shape=_noise_shape(tuple(inputs.shape), self.broadcast_dims),
        )

    __call__.__wrapped__ = original
    return __call__


def _linen_call(original):
    from flax.linen.module import merge_param

    def __call__(self, inputs, deterministic=None, rng=None):  # noqa: N807
        counter = active()
        if counter is None:
            return original(self, inputs, deterministic=deterministic, rng=rng)
        if merge_param("deterministic", self.deterministic, deterministic):
            return original(self, inputs, deterministic=deterministic, rng=rng)
        _check_concrete(inputs, "flax.linen.Dropout")
        return counter.apply(
            dropout_layer, inputs, self.rate, source="flax.linen.Dropout",
            noise_shape=_noise_shape(tuple(inputs.shape), self.broadcast_dims),
        )

    __call__.__wrapped__ = original
    return __call__


def _patches() -> list[AttributePatch]:
    return _flax_patches() + keras3_patches("jax", dropout_layer)


def _flax_patches() -> list[AttributePatch]:
    from flax import nnx

    patches = [AttributePatch(nnx.Dropout, "__call__", _nnx_call(nnx.Dropout.__call__))]
    # The attention-weight dropouts, wherever a loaded module holds them (P8).
    patches.extend(attention_patches())
    try:
        from flax import linen
    except ImportError:  # pragma: no cover - linen ships with flax
        return patches
    # linen wraps __call__ at class creation; the wrapper must stay outermost.
    from flax.linen.module import wrap_method_once

    original = linen.Dropout.__call__
    inner = getattr(original, "__wrapped__", original)
    patches.append(
        AttributePatch(linen.Dropout, "__call__", wrap_method_once(_linen_call(inner)))
    )
    return patches


_PATCHES = PatchSet(_patches)


def portable_masks(seed: int) -> PortableMasks:
    """Make Flax's Dropout layers (NNX and linen) draw portable masks, numbered in call order.

    Inside ``with portable_masks(seed):`` the j-th Dropout call in training
    mode in this thread is ``dropout_layer(T, p, seed=seed, offset=j * 2**40)``
    on that call's array (SPEC P8; details in the module docstring).

    Parameters
    ----------
    seed : int or jax.Array
        The Philox key, an integer in ``[0, 2**64)``; inside a traced function also a
        traced integer (``int32``/``uint32``, ``uint32[2]`` words; SPEC P9).

    Returns
    -------
    dropout_ref.core.sites.PortableMasks
        The context manager; ``ctx.sites`` lists the numbered sites (compiled ones once per
        trace, see :class:`dropout_ref.core.sites.Site`).

    Raises
    ------
    TypeError, ValueError
        If ``seed`` is not an integer in ``[0, 2**64)`` or a traced integer.
    RuntimeError
        On entry, if this thread already holds a ``portable_masks`` context; inside,
        for a Dropout under ``jax.vmap``.

    """
    return PortableMasks(seed, "jax", patches=_PATCHES, compiled=COMPILED)
