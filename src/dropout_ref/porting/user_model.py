"""Bring an unmodified course MLP into the port check: the framework's dropout, portable masks.

A user's model written the course's way (``nn.Sequential`` with ``nn.Dropout``,
a Keras ``Sequential`` with ``Dropout`` layers, a Gluon ``nn.Sequential`` with
``nn.Dropout``, a Flax NNX module with ``nnx.Dropout``) becomes a step function of
:mod:`dropout_ref.porting.port_check` by running its training step inside
``dropout_ref.<backend>.portable_masks(mask_seed)`` (SPEC P8): the framework's
j-th training-mode dropout then draws ``dropout_layer(H, p, seed=mask_seed,
offset=j * 2**40)``, the masks of our MLP's hidden layers j = 0, 1 (SPEC M6).

Defaults (each replaceable):

backend
    From the model's type: ``torch.nn.Module`` -> torch, ``keras.Model`` ->
    the framework of Keras' backend (tensorflow, jax or torch), ``mxnet.gluon.Block``
    -> mxnet, ``flax.nnx.Module`` -> jax.
weights
    The model's three dense layers in module order (``nn.Linear``, Keras
    ``Dense``, Gluon ``Dense``, ``nnx.Linear``), converted to the neutral
    layout ``W (in, out)`` of :mod:`dropout_ref.models.mlp_spec` (torch's and Gluon's
    ``(out, in)`` weights transposed).
train_step
    ``train_step(model, X, y, lr) -> loss``: one plain SGD step on the mean
    softmax cross-entropy in the framework's training mode (SPEC M2), the
    update of the course's ``train_ch3``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from dropout_ref.porting.compare import StepFunction, from_model

__all__ = ["UserModel", "detect_backend", "from_user_model"]

TrainStep = Callable[[Any, np.ndarray, np.ndarray, float], float]


@dataclass
class UserModel:
    """A user's model and how to drive it (``None`` fields take the defaults above)."""

    model: Any
    train_step: TrainStep | None = None
    backend: str | None = None
    get_weights: Callable[[Any], dict[str, np.ndarray]] | None = None
    set_weights: Callable[[Any, dict[str, np.ndarray]], None] | None = None
    name: str | None = None


#: Keras 3 backend -> the dropout_ref backend whose ``portable_masks`` serves it (SPEC P8).
KERAS_CONTEXTS = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}


def detect_backend(model: Any) -> str | None:
    """Return the dropout_ref backend of a framework model, ``None`` if none matches.

    Only frameworks already imported are asked, so nothing is imported here.
    """
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(model, torch.nn.Module):
        return "torch"
    keras = sys.modules.get("keras")
    if keras is not None and isinstance(model, keras.Model):
        # The context of the framework whose tensors Keras' backend uses (SPEC P8).
        return KERAS_CONTEXTS.get(keras.backend.backend())
    mxnet = sys.modules.get("mxnet")
    if mxnet is not None and isinstance(model, mxnet.gluon.Block):
        return "mxnet"
    nnx = sys.modules.get("flax.nnx")
    if nnx is not None and isinstance(model, nnx.Module):
        return "jax"
    return None


# --- the three dense layers, per framework ---------------------------------------------------


def _dense_layers(model: Any, backend: str) -> list[Any]:
    if backend == "torch":
        import torch

        layers = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    elif backend == "tensorflow":
        import keras

        layers = [m for m in model._flatten_layers() if isinstance(m, keras.layers.Dense)]
    elif backend == "mxnet":
        from dropout_ref.mxnet.framework import gluon

        layers = []

        def walk(block: Any) -> None:
            if isinstance(block, gluon.nn.Dense):
                layers.append(block)
            for child in block._children.values():
                walk(child() if callable(child) and not isinstance(child, gluon.Block) else child)

        walk(model)
    else:
        from flax import nnx

        layers = [m for _, m in model.iter_modules() if isinstance(m, nnx.Linear)]
    if len(layers) != 3:
        raise ValueError(
            f"the course MLP has 3 dense layers; found {len(layers)} in the {backend} model "
            f"{type(model).__name__}: pass get_weights/set_weights for another structure"
        )
    return layers


def _read(layer: Any, backend: str) -> tuple[np.ndarray, np.ndarray]:
    if backend == "torch":
        return layer.weight.detach().cpu().numpy().T, layer.bias.detach().cpu().numpy()
    if backend == "tensorflow":
        return np.asarray(layer.kernel), np.asarray(layer.bias)
    if backend == "mxnet":
        return layer.weight.data().asnumpy().T, layer.bias.data().asnumpy()
    return np.asarray(layer.kernel[...]), np.asarray(layer.bias[...])


def _write(layer: Any, backend: str, W: np.ndarray, b: np.ndarray) -> None:
    if backend == "torch":
        import torch

        with torch.no_grad():
            layer.weight.copy_(torch.from_numpy(np.ascontiguousarray(W.T)))
            layer.bias.copy_(torch.from_numpy(b))
    elif backend == "tensorflow":
        layer.kernel.assign(W)
        layer.bias.assign(b)
    elif backend == "mxnet":
        from dropout_ref.mxnet.framework import mx

        make = mx.np.array if layer.weight.data().__class__.__module__.startswith(
            "mxnet.numpy") else mx.nd.array
        layer.weight.set_data(make(np.ascontiguousarray(W.T), dtype="float32"))
        layer.bias.set_data(make(b, dtype="float32"))
    else:
        import jax.numpy as jnp

        layer.kernel[...] = jnp.asarray(W)
        layer.bias[...] = jnp.asarray(b)


def default_get_weights(backend: str) -> Callable[[Any], dict[str, np.ndarray]]:
    """Read the three dense layers into the neutral layout."""

    def get_weights(model: Any) -> dict[str, np.ndarray]:
        weights = {}
        for k, layer in enumerate(_dense_layers(model, backend), start=1):
            W, b = _read(layer, backend)
            weights[f"W{k}"] = np.array(W, dtype=np.float32)
            weights[f"b{k}"] = np.array(b, dtype=np.float32)
        return weights

    return get_weights


def default_set_weights(backend: str) -> Callable[[Any, dict[str, np.ndarray]], None]:
    """Write neutral-layout weights into the three dense layers."""

    def set_weights(model: Any, weights: dict[str, np.ndarray]) -> None:
        for k, layer in enumerate(_dense_layers(model, backend), start=1):
            _write(layer, backend, np.asarray(weights[f"W{k}"], np.float32),
                   np.asarray(weights[f"b{k}"], np.float32))

    return set_weights


# --- the default training step ----------------------------------------------------------------


def default_train_step(backend: str) -> TrainStep:
    """Plain SGD on the mean softmax cross-entropy, in the framework's training mode (M2)."""
    if backend == "torch":
        import torch
        import torch.nn.functional as F

        def torch_step(model, X, y, lr):
            model.train()
            model.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(torch.from_numpy(X)), torch.from_numpy(y))
            loss.backward()
            with torch.no_grad():
                for param in model.parameters():
                    param -= lr * param.grad
            return loss.item()

        return torch_step
    if backend == "tensorflow":
        import tensorflow as tf

        def tf_step(model, X, y, lr):
            with tf.GradientTape() as tape:
                logits = model(tf.constant(X), training=True)
                loss = tf.reduce_mean(
                    tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits)
                )
            variables = model.trainable_variables
            for var, grad in zip(variables, tape.gradient(loss, variables), strict=True):
                var.assign_sub(lr * grad)
            return float(loss)

        return tf_step
    if backend == "mxnet":
        from dropout_ref.mxnet.framework import autograd, gluon, mx

        def mxnet_step(model, X, y, lr):
            params = [p for p in model.collect_params().values() if p.grad_req != "null"]
            numpy_mode = params[0].data().__class__.__module__.startswith("mxnet.numpy")
            make = mx.np.array if numpy_mode else mx.nd.array
            loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
            with autograd.record():
                loss = loss_fn(model(make(X, dtype="float32")), make(y, dtype="int64")).mean()
            loss.backward()
            for param in params:
                param.set_data(param.data() - lr * param.grad())
            return float(loss.asnumpy())

        return mxnet_step
    import jax
    import jax.numpy as jnp
    from flax import nnx

    def jax_step(model, X, y, lr):
        model.train()

        def loss_fn(m):
            log_probs = jax.nn.log_softmax(m(jnp.asarray(X)))
            return -jnp.take_along_axis(log_probs, jnp.asarray(y)[:, None], axis=-1).mean()

        loss, grads = nnx.value_and_grad(loss_fn)(model)
        params = nnx.state(model, nnx.Param)
        nnx.update(model, jax.tree.map(lambda p, g: p - lr * g, params, grads))
        return float(loss)

    return jax_step


def _portable_masks(backend: str) -> Callable[[int], Any]:
    from dropout_ref.core.registry import get_backend

    return get_backend(backend).module.portable_masks


def from_user_model(
    model: Any,
    train_step: TrainStep | None = None,
    *,
    backend: str | None = None,
    get_weights: Callable[[Any], dict[str, np.ndarray]] | None = None,
    set_weights: Callable[[Any, dict[str, np.ndarray]], None] | None = None,
    name: str | None = None,
) -> StepFunction:
    """Return an unmodified model's training step inside ``portable_masks`` as a step function.

    Parameters
    ----------
    model : object
        A torch, Keras (TensorFlow backend), Gluon or Flax NNX model of the
        course MLP; its weights are overwritten at every step.
    train_step : callable, optional
        ``train_step(model, X, y, lr) -> loss`` with NumPy ``X``, ``y``: your
        training code for one batch, unchanged (default: plain SGD on the mean
        softmax cross-entropy, see the module docstring).
    backend : str, optional
        ``"torch"``, ``"tensorflow"``, ``"mxnet"`` or ``"jax"``; by default
        detected from the model's type.
    get_weights, set_weights : callable, optional
        Converters from and to the neutral layout; default: the three dense layers.
    name : str, optional
        How reports call the model.

    Returns
    -------
    StepFunction
        For :func:`dropout_ref.porting.port_check.check_port` and ``dropout-ref compare``.

    Raises
    ------
    TypeError
        If the backend cannot be detected or ``train_step`` is not callable.

    """
    backend = backend or detect_backend(model)
    if backend is None:
        raise TypeError(
            f"cannot tell the framework of model {type(model).__name__}: pass backend= "
            "('torch', 'tensorflow', 'mxnet' or 'jax')"
        )
    if train_step is not None and not callable(train_step):
        raise TypeError(f"train_step must be callable, got {type(train_step).__name__}")
    keras = sys.modules.get("keras")
    if (
        train_step is None and keras is not None and isinstance(model, keras.Model)
        and keras.backend.backend() != "tensorflow"
    ):
        # The course's default step and dense-layer lookup for Keras are TensorFlow's.
        raise TypeError(
            f"a Keras model on KERAS_BACKEND={keras.backend.backend()} has no default course "
            "step here: pass train_step= and weights=, or check it against its port with the "
            "two-model port check (dropout_ref.porting.pair, compare --user-model A "
            "--user-model B)"
        )
    step_fn = train_step or default_train_step(backend)
    portable_masks = _portable_masks(backend)

    def sgd_step(m: Any, images: np.ndarray, labels: np.ndarray, lr: float, mask_seed: int):
        with portable_masks(mask_seed):
            return step_fn(m, images, labels, lr)

    step = from_model(
        model,
        sgd_step,
        get_weights=get_weights or default_get_weights(backend),
        set_weights=set_weights or default_set_weights(backend),
    )
    label = name or f"{type(model).__name__} ({backend}, portable_masks)"
    step.__name__ = step.__qualname__ = label
    return step


def resolve_user_model(obj: Any) -> StepFunction:
    """Turn what a ``--user-model`` function returns into a step function.

    Accepted: a :class:`UserModel`, a bare framework model (all defaults), or a
    step function already (five arguments, see :mod:`dropout_ref.porting.port_check`).
    """
    if isinstance(obj, UserModel):
        return from_user_model(
            obj.model, obj.train_step, backend=obj.backend, get_weights=obj.get_weights,
            set_weights=obj.set_weights, name=obj.name,
        )
    if detect_backend(obj) is not None:
        return from_user_model(obj)
    if callable(obj):
        return obj
    # A PortModel belongs to the two-model check; say so rather than only "wrong type".
    two_models = (
        ": a PortModel is compared with another model, give a second --user-model"
        if type(obj).__name__ == "PortModel" else ""
    )
    raise TypeError(
        "a --user-model function must return a framework model, a "
        f"dropout_ref.porting.user_model.UserModel or a step function, got "
        f"{type(obj).__name__}{two_models}"
    )


def import_factory(target: str, argument: str = "--user-model") -> Callable[[], Any]:
    """Import ``module:function`` (or ``path/to/file.py:function``) and return the function.

    The current directory is searched first for a module name, as ``python -m``
    would (the ``dropout-ref`` script itself does not put it on ``sys.path``).
    Messages name ``argument``.

    Raises
    ------
    ValueError
        If ``target`` is not ``module:function``.
    ImportError, AttributeError
        If the module or the function cannot be found.

    """
    import importlib
    import importlib.util
    import os
    from pathlib import Path

    module_name, sep, function_name = target.rpartition(":")
    if not sep or not module_name or not function_name.isidentifier():
        raise ValueError(
            f"{argument} must be module:function or path/to/file.py:function, got {target!r}"
        )
    if module_name.endswith(".py"):
        path = Path(module_name)
        if not path.is_file():
            raise ImportError(f"{argument}: no file {module_name!r}")
        spec = importlib.util.spec_from_file_location(f"_dropout_ref_user_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)  # type: ignore[union-attr]
    else:
        added = os.getcwd() not in sys.path
        if added:
            sys.path.insert(0, os.getcwd())
        try:
            module = importlib.import_module(module_name)
        finally:
            if added:
                sys.path.remove(os.getcwd())
    try:
        function = getattr(module, function_name)
    except AttributeError:
        raise AttributeError(
            f"{argument}: module {module_name!r} has no function {function_name!r}"
        ) from None
    if not callable(function):
        raise TypeError(
            f"{argument}: {module_name}:{function_name} is a {type(function).__name__}, "
            "not a function"
        )
    return function


def load_user_model(target: str) -> StepFunction:
    """Import ``module:function`` (or ``path/to/file.py:function``), call it, resolve the result.

    The current directory is searched first for a module name, as ``python -m``
    would (the ``dropout-ref`` script itself does not put it on ``sys.path``).

    Raises
    ------
    ValueError
        If ``target`` is not ``module:function``.
    ImportError, AttributeError
        If the module or the function cannot be found.
    TypeError
        If the function's result is neither a model, a :class:`UserModel` nor a step
        function.

    """
    step = resolve_user_model(import_factory(target)())
    if getattr(step, "__name__", "step") == "sgd_step":
        step.__name__ = target
    return step
