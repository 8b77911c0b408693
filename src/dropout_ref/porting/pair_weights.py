"""Weights of a model pair (SPEC P8): read, write, map between two models' names and layouts.

Each model of :mod:`dropout_ref.porting.pair` gives its weights as
``dict[str, array]``; a name map takes them to *shared* names and layouts, so that
A's weights can be written into B and the two compared after every step.

Name maps
    A mapping or a function: own name -> shared name, or ``(shared name, axes)``
    where ``numpy.transpose(w, axes)`` is the shared layout (written back with the
    inverse permutation), or ``None`` to leave a weight out. A mapping's unlisted
    names keep their own name. Shapes that differ only by size-1 axes are the same
    tensor (Hugging Face TF's ``(1, n)`` biases against torch's ``(n,)``) and are
    reshaped, nothing to map.

Defaults
    torch: ``named_parameters`` (tied weights once); Keras 3 / tf_keras: the
    trainable weights by path (tf_keras: by name); Flax NNX: the ``nnx.Param``
    state, ``.``-joined paths; a Hugging Face Flax model: its ``params`` tree,
    ``.``-joined; Gluon: ``collect_params``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import numpy as np

from dropout_ref.porting.compare import TINY

__all__ = [
    "MapEntry",
    "MappedModel",
    "NameMap",
    "default_get_weights",
    "default_set_weights",
    "from_shared",
    "to_shared",
    "weight_differences",
]

#: A name map's value: the shared name, or the shared name and the axes permutation
#: that turns this model's tensor into the shared layout (``(1, 0)``: a transpose).
MapEntry = str | tuple[str, Sequence[int]] | None
NameMap = Mapping[str, MapEntry] | Callable[[str], MapEntry]

GetWeights = Callable[[Any], Mapping[str, Any]]
SetWeights = Callable[[Any, dict[str, np.ndarray]], None]


class MappedModel(Protocol):
    """What the name maps read of a :class:`dropout_ref.porting.pair.PortModel`."""

    label: str | None
    name_map: NameMap | None


# --- default weight access ------------------------------------------------------------------


def _flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(tree, Mapping):
        flat: dict[str, Any] = {}
        for key, value in tree.items():
            flat.update(_flatten(value, f"{prefix}{key}."))
        return flat
    return {prefix[:-1]: tree}


def _unflatten_into(tree: Any, flat: Mapping[str, Any], prefix: str = "") -> Any:
    if isinstance(tree, Mapping):
        return {
            key: _unflatten_into(value, flat, f"{prefix}{key}.") for key, value in tree.items()
        }
    return flat.get(prefix[:-1], tree)


def _keras_name(variable: Any) -> str:
    return str(getattr(variable, "path", None) or variable.name)


def _is_keras(model: Any) -> bool:
    """Whether ``model`` is a Keras 3 or tf_keras model (on any Keras backend)."""
    if not hasattr(model, "trainable_weights"):
        return False
    roots = {(cls.__module__ or "").split(".")[0] for cls in type(model).__mro__}
    return bool(roots & {"keras", "tf_keras"})


def default_get_weights(backend: str) -> GetWeights:
    """Return ``get_weights(model) -> dict`` of ``backend``'s models (module docstring)."""
    def get_weights(model: Any) -> dict[str, np.ndarray]:
        # Keras first: a Keras 3 model is a torch module on KERAS_BACKEND=torch, a pytree
        # of Keras variables on jax; its own weight paths are the names on every backend.
        if backend == "tensorflow" or _is_keras(model):
            return {_keras_name(v): np.array(v.numpy()) for v in model.trainable_weights}
        if backend == "torch":
            return {n: p.detach().cpu().numpy().copy() for n, p in model.named_parameters()}
        if backend == "jax":
            if hasattr(model, "params") and isinstance(model.params, Mapping):
                return {n: np.array(v) for n, v in _flatten(model.params).items()}
            from flax import nnx

            state = nnx.state(model, nnx.Param)
            return {
                ".".join(map(str, path)): np.array(value[...])
                for path, value in nnx.to_flat_state(state)
            }
        return {n: p.data().asnumpy().copy() for n, p in model.collect_params().items()}

    return get_weights


def default_set_weights(backend: str) -> SetWeights:
    """Return ``set_weights(model, dict)``, the inverse of :func:`default_get_weights`."""
    def set_weights(model: Any, weights: dict[str, np.ndarray]) -> None:
        if backend == "tensorflow" or _is_keras(model):
            variables = {_keras_name(v): v for v in model.trainable_weights}
            for name, value in weights.items():
                variables[name].assign(value)
        elif backend == "torch":
            import torch

            params = dict(model.named_parameters())
            with torch.no_grad():
                for name, value in weights.items():
                    params[name].copy_(torch.from_numpy(np.ascontiguousarray(value)))
        elif backend == "jax":
            import jax.numpy as jnp

            if hasattr(model, "params") and isinstance(model.params, Mapping):
                flat = {n: jnp.asarray(v) for n, v in weights.items()}
                model.params = _unflatten_into(model.params, flat)
                return
            from flax import nnx

            state = nnx.state(model, nnx.Param)
            for path, value in nnx.to_flat_state(state):
                name = ".".join(map(str, path))
                if name in weights:
                    value[...] = jnp.asarray(weights[name])
            nnx.update(model, state)
        else:
            from dropout_ref.mxnet.framework import mx

            params = model.collect_params()
            for name, value in weights.items():
                param = params[name]
                # Gluon in numpy mode (npx.set_np) holds mx.np arrays, else mx.nd arrays.
                numpy_mode = param.data().__class__.__module__.startswith("mxnet.numpy")
                make = mx.np.array if numpy_mode else mx.nd.array
                param.set_data(make(np.ascontiguousarray(value), dtype=param.data().dtype))

    return set_weights


# --- name maps -------------------------------------------------------------------------------


def _map_entry(port: MappedModel, name: str) -> tuple[str, tuple[int, ...] | None] | None:
    mapping = port.name_map
    if mapping is None:
        entry: MapEntry = name
    elif callable(mapping) and not isinstance(mapping, Mapping):
        entry = mapping(name)
    else:
        entry = mapping.get(name, name)
    if entry is None:
        return None
    if isinstance(entry, str):
        return entry, None
    shared, axes = entry
    return str(shared), tuple(int(a) for a in axes)


def to_shared(port: MappedModel, weights: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Return a model's weights under the shared names, in the shared layout."""
    shared: dict[str, np.ndarray] = {}
    for name, value in weights.items():
        entry = _map_entry(port, name)
        if entry is None:
            continue
        key, axes = entry
        array = np.asarray(value)
        if axes is not None:
            if sorted(axes) != list(range(array.ndim)):
                raise ValueError(
                    f"name_map of {port.label}: axes {axes} of weight {name!r} are not a "
                    f"permutation of its {array.ndim} axes"
                )
            array = np.transpose(array, axes)
        if key in shared:
            raise ValueError(f"name_map of {port.label}: two weights map to {key!r}")
        shared[key] = array
    return shared


def _conform(array: np.ndarray, shape: tuple[int, ...], what: str, source: str) -> np.ndarray:
    """Return ``array`` in ``shape``: equal shapes, or equal once size-1 axes are dropped.

    The second case is one tensor stored with a unit axis in one framework and
    without in another (Hugging Face's TF ``Conv1D`` bias is ``(1, n)``, torch's
    ``(n,)``): the same numbers, nothing to map.
    """
    if array.shape == shape:
        return array
    if tuple(d for d in array.shape if d != 1) == tuple(d for d in shape if d != 1):
        return array.reshape(shape)
    raise ValueError(
        f"{what} has shape {shape}, {source} gives {array.shape}: give its axes in "
        "name_map (own name -> (shared name, axes))"
    )


def from_shared(
    port: MappedModel, shared: Mapping[str, np.ndarray], own: Mapping[str, Any], source: str
) -> dict[str, np.ndarray]:
    """Return ``shared`` weights under ``port``'s own names and layout (those ``own`` lists)."""
    result: dict[str, np.ndarray] = {}
    for name, current in own.items():
        entry = _map_entry(port, name)
        if entry is None:
            continue
        key, axes = entry
        if key not in shared:
            raise ValueError(
                f"weight {name!r} of {port.label} (shared name {key!r}) has no counterpart "
                f"in {source}: give name_map= (own name -> shared name, or None to leave it "
                f"out); {source}'s names include {sorted(shared)[:5]}"
            )
        array = np.asarray(shared[key])
        if axes is not None:
            array = np.transpose(array, np.argsort(axes))
        array = _conform(array, tuple(np.shape(current)), f"weight {name!r} of {port.label}",
                         f"{source}'s {key!r}")
        result[name] = np.ascontiguousarray(array, dtype=np.asarray(current).dtype)
    return result


def weight_differences(
    a: Mapping[str, np.ndarray], b: Mapping[str, np.ndarray]
) -> tuple[float, float, str | None]:
    """Return the largest normwise relative difference, the largest absolute one, and its tensor.

    Per tensor ``max|b - a| / max(max|a|, TINY)`` in float64 (see
    :mod:`dropout_ref.porting.pair`); NaN or inf counts as the worst.
    """
    relative, absolute, worst = 0.0, 0.0, None
    for name, wa in a.items():
        ref = np.asarray(wa, dtype=np.float64)
        other = _conform(np.asarray(b[name], dtype=np.float64), ref.shape, f"weight {name!r}",
                         "the other model")
        diff = np.abs(other - ref)
        top = float(diff.max()) if diff.size else 0.0
        scale = float(np.abs(ref).max()) if ref.size else 0.0
        rel = top / max(scale, TINY) if math.isfinite(top) else math.inf
        if worst is None or not rel <= relative:  # NaN counts as the worst
            relative, worst = rel, name
        absolute = max(absolute, top)
    return relative, absolute, worst
