"""Flax's attention-weight dropout as ``portable_masks`` doors (SPEC P8).

``flax.linen`` and ``flax.nnx`` each define ``dot_product_attention_weights``,
which drops the softmax weights with ``jax.random.bernoulli`` itself. Their
``dot_product_attention`` calls it through the module global, and the
multi-head modules (linen ``MultiHeadDotProductAttention`` / ``SelfAttention``,
``nnx.MultiHeadAttention``) call that ``dot_product_attention`` (their
``attention_fn`` default), so replacing the module global covers them. Code
that imported the function by name (Hugging Face's Flax models do
``from flax.linen.attention import dot_product_attention_weights``) holds the
original object: at install, every loaded module's attribute that IS one of
Flax's originals is replaced too.

The door (SPEC P8): a call with ``deterministic=False`` is one site, rate 0
included (the function has a training flag, so the numbering follows the
model's structure, not its rates; X4's GPT numbers its attention site at rate
0 too). Flax's own code computes everything else (bias, mask, precision,
dtype, ``force_fp32_for_softmax``, ``einsum``, the ``module`` sow of the
weights, which Flax performs before its dropout) with ``deterministic=True``;
the weights it returns are then ``dropout_layer(W, rate, seed, offset=j *
2**40, noise_shape=N)``. ``N`` is Flax's own mask shape: with
``broadcast_dropout=True`` (the default) ``(1, ..., 1, q_length, kv_length)``,
one decision shared over the batch and head axes, else element-wise (``None``).
``dropout_rng`` is never used inside the context (Flax's dropout branch does
not run); the modules still derive it (linen ``make_rng``, ``nnx.Rngs``
streams) exactly as they do without the context, so the streams advance the
same way.

What Flax itself decides stays Flax's: the multi-head modules pass
``deterministic=True`` whenever their ``dropout_rate`` is 0 (they do not even
resolve the training flag then), so a rate-0 attention module is no site.
``nnx.dot_product_attention`` with rate 0 and no ``module`` skips the weights
function (``jax.nn.dot_product_attention``); called directly in training it
still takes its rate-0 number (D2: ``dropout_layer(W, 0)`` is ``W``, so its
output is Flax's untouched).

A module imported AFTER the context was entered binds whatever the attribute
is then, i.e. the door; the door calls Flax's original in a thread without a
context, so after the context closes that module keeps working natively, and
the next context numbers it.
"""

from __future__ import annotations

import functools
import inspect
import sys
from collections.abc import Callable
from typing import Any

from dropout_ref.core.doors import Door
from dropout_ref.core.sites import AttributePatch, active
from dropout_ref.jax import dropout_layer
from dropout_ref.jax.compiled_sites import refuse_vmap

__all__ = ["ATTENTION_DOORS", "attention_noise_shape", "attention_patches", "is_door"]

_N_SHARED = "broadcast_dropout=True -> noise (1, ..., 1, q, k); else element-wise"

#: The attention doors of Flax (SPEC P8); ``dropout_ref.jax.intercept.DOORS`` lists them.
ATTENTION_DOORS: tuple[Door, ...] = (
    Door(
        "flax.linen.dot_product_attention_weights", "site",
        f"deterministic=False, rate 0 included; {_N_SHARED}; also where imported by name",
    ),
    Door(
        "flax.linen.dot_product_attention", "site",
        "through dot_product_attention_weights (module global)",
    ),
    Door(
        "flax.linen.MultiHeadDotProductAttention", "site",
        "SelfAttention too; through dot_product_attention; dropout_rate 0 -> no site (Flax "
        "passes deterministic=True)",
    ),
    Door(
        "flax.nnx.nn.attention.dot_product_attention_weights", "site",
        f"deterministic=False, rate 0 included; {_N_SHARED}; also where imported by name",
    ),
    Door(
        "flax.nnx.dot_product_attention", "site",
        "through dot_product_attention_weights; rate 0 without module= (Flax's "
        "jax.nn.dot_product_attention path) numbered, output Flax's",
    ),
    Door(
        "flax.nnx.MultiHeadAttention", "site",
        "through dot_product_attention; dropout_rate 0 -> no site (Flax passes deterministic=True)",
    ),
)


def attention_noise_shape(
    weights_shape: tuple[int, ...], key_ndim: int, broadcast_dropout: bool
) -> tuple[int, ...] | None:
    """Return Flax's attention-dropout mask shape as SPEC D12's ``noise_shape``.

    Flax draws ``(1,) * (key.ndim - 2) + weights.shape[-2:]`` when
    ``broadcast_dropout`` (one decision per (query, key) pair, shared over the
    batch and head axes), else one per weight (``None``: element-wise).
    """
    if not broadcast_dropout:
        return None
    return (1,) * (key_ndim - 2) + tuple(int(d) for d in weights_shape[-2:])


def _weights_door(original: Callable[..., Any], source: str) -> Callable[..., Any]:
    signature = inspect.signature(original)

    @functools.wraps(original)
    def dot_product_attention_weights(*args: Any, **kwargs: Any) -> Any:
        counter = active()
        if counter is None:
            return original(*args, **kwargs)
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        call = bound.arguments
        if call["deterministic"]:
            return original(*args, **kwargs)
        rate = call["dropout_rate"]
        # Flax's own code for all but the dropout: deterministic=True skips its
        # jax.random.bernoulli branch, so dropout_rng is never drawn from.
        call["deterministic"] = True
        weights = original(*bound.args, **bound.kwargs)
        refuse_vmap(weights, source)
        noise = attention_noise_shape(
            tuple(weights.shape), call["key"].ndim, bool(call["broadcast_dropout"])
        )
        return counter.apply(dropout_layer, weights, rate, source=source, noise_shape=noise)

    return dot_product_attention_weights


def _nnx_attention_door(original: Callable[..., Any], source: str) -> Callable[..., Any]:
    signature = inspect.signature(original)

    @functools.wraps(original)
    def dot_product_attention(*args: Any, **kwargs: Any) -> Any:
        counter = active()
        if counter is None:
            return original(*args, **kwargs)
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        call = bound.arguments
        out = original(*args, **kwargs)
        # Rate > 0 or a module= goes through dot_product_attention_weights (its door numbers
        # it); only Flax's rate-0 shortcut, which never builds the weights, is numbered here.
        if call["deterministic"] or call["dropout_rate"] != 0.0 or call["module"] is not None:
            return out
        query, key = call["query"], call["key"]
        refuse_vmap(out, source)
        shape = (*query.shape[:-3], query.shape[-2], query.shape[-3], key.shape[-3])
        noise = attention_noise_shape(shape, key.ndim, bool(call["broadcast_dropout"]))
        # D2: dropout_layer(W, 0) is W, so the site changes nothing but the numbering.
        counter.number(out, source, shape, 0.0, noise)
        return out

    return dot_product_attention


@functools.cache
def _doors() -> dict[int, tuple[Callable[..., Any], Callable[..., Any]]]:
    """Flax's originals and their doors, built once, keyed by ``id(original)``.

    Built once so that a module that imported a door while a context was open is
    recognised (it already holds the door) at the next install.
    """
    from flax.linen import attention as linen_attention
    from flax.nnx.nn import attention as nnx_attention

    pairs = [
        (linen_attention.dot_product_attention_weights,
         _weights_door(linen_attention.dot_product_attention_weights,
                       "flax.linen.dot_product_attention_weights")),
        (nnx_attention.dot_product_attention_weights,
         _weights_door(nnx_attention.dot_product_attention_weights,
                       "flax.nnx.nn.attention.dot_product_attention_weights")),
        (nnx_attention.dot_product_attention,
         _nnx_attention_door(nnx_attention.dot_product_attention,
                             "flax.nnx.dot_product_attention")),
    ]
    return {id(original): (original, door) for original, door in pairs}


#: Module -> (the module, its namespace size, the names in it that held one of Flax's
#: originals) when it was last scanned. Every context entry looks at every loaded module; a
#: module is scanned in full again only when its namespace grew or shrank (a scan of ~4000
#: modules costs ~50 ms, a dict lookup per module well under 1 ms).
_SCANNED: dict[int, tuple[Any, int, tuple[str, ...]]] = {}


def _names_holding(module: Any, originals: set[int]) -> tuple[str, ...]:
    """Names of ``module`` whose value is one of the originals (identity), scanned once."""
    try:
        namespace = vars(module)
    except TypeError:  # a placeholder (None) or an object without __dict__
        return ()
    known = _SCANNED.get(id(module))
    if known is not None and known[0] is module and known[1] == len(namespace):
        return known[2]
    # The identity test runs in C (set.isdisjoint over map(id, ...)); only a hit is looked
    # at in Python.
    values = list(namespace.items())
    if originals.isdisjoint(map(id, (v for _, v in values))):
        names: tuple[str, ...] = ()
    else:
        names = tuple(n for n, v in values if id(v) in originals)
    _SCANNED[id(module)] = (module, len(namespace), names)
    return names


def attention_patches() -> list[AttributePatch]:
    """Patch every loaded module attribute that is one of Flax's attention originals.

    Flax's own modules (``flax.linen.attention``, ``flax.linen``,
    ``flax.nnx.nn.attention``, ``flax.nnx``) and any module that imported the
    functions by name (``transformers``' Flax models) are found by identity.
    """
    doors = _doors()
    originals = set(doors)
    patches = []
    seen: set[int] = set()
    for module in list(sys.modules.values()):
        if id(module) in seen:  # one module under two names: patch it once
            continue
        seen.add(id(module))
        for name in _names_holding(module, originals):
            value = vars(module).get(name)
            found = doors.get(id(value))
            if found is not None and found[0] is value:
                patches.append(AttributePatch(module, name, found[1]))
    return patches


def is_door(function: Any) -> bool:
    """Whether ``function`` is one of this module's attention doors (for tests and docs)."""
    return any(function is door for _, door in _doors().values())
