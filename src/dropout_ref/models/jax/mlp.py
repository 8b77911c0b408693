"""The course MLP as a Flax NNX module (SPEC M1-M5).

Dropout follows NNX's idiom: ``model.train()`` / ``model.eval()`` set the
``deterministic`` attribute of every nested :class:`Dropout` (M2), and the
masks' keys come from the model's ``nnx.Rngs`` stream ``dropout``. The three
layers are ``nnx.Linear``, whose ``kernel`` is already the course's layout
``H = X @ W + b``: ``W1`` is ``linear1.kernel``, ``b1`` is ``linear1.bias``.
"""

from __future__ import annotations

import inspect
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from dropout_ref.jax import dropout_layer
from dropout_ref.jax.keys import KEYS
from dropout_ref.models.mlp_spec import (
    DROPOUT_OFFSETS,
    WEIGHT_NAMES,
    MLPSpec,
    SpecRates,
    as_generator,
    flat_input_shape,
    resolve_weights,
    validate_weights,
)

#: Neutral weight name -> (layer attribute, NNX parameter name).
_PARAMS = {
    "W1": ("linear1", "kernel"),
    "b1": ("linear1", "bias"),
    "W2": ("linear2", "kernel"),
    "b2": ("linear2", "bias"),
    "W3": ("linear3", "kernel"),
    "b3": ("linear3", "bias"),
}


def _default_dropout_key(rng: np.random.Generator | int | None) -> jax.Array:
    """Return the key of a default ``nnx.Rngs``: from ``rng`` if given, else the bridge's stream."""
    if rng is None:
        return KEYS.next()
    # A stream of its own: the weights came from as_generator(rng) too, so salt the seed.
    gen = as_generator(rng)  # the same TypeError as the init for a bad rng
    if not isinstance(rng, np.random.Generator):
        gen = np.random.default_rng([int(rng), 0xD40])
    return jax.random.key(int(gen.integers(2**63)))


class Dropout(nnx.Module):
    """``flax.nnx.Dropout``'s interface around :func:`dropout_ref.jax.dropout_layer` (SPEC D).

    Parameters
    ----------
    rate : float
        Drop probability.
    offset : int, optional
        Philox counter offset of this layer's portable mask (``mask_seed`` calls).
    deterministic : bool, optional
        ``True`` passes inputs through (eval); ``model.train()``/``model.eval()`` set it.
    rng_collection : str, optional
        The ``nnx.Rngs`` stream the keys come from.
    rngs : nnx.Rngs, optional
        Source of the keys in training mode.

    """

    def __init__(
        self,
        rate: float,
        *,
        offset: int = 0,
        deterministic: bool = False,
        rng_collection: str = "dropout",
        rngs: nnx.Rngs | None = None,
    ) -> None:
        self.rate = rate
        self.offset = offset
        self.deterministic = deterministic
        self.rng_collection = rng_collection
        self.rngs = rngs

    def __call__(self, X: jax.Array, *, mask_seed: Any = None, rate: Any = None) -> jax.Array:
        """Return ``X`` in eval mode; dropout with a key of ``rngs`` (or ``mask_seed``) in train.

        ``rate`` replaces ``self.rate`` for this call (a schedule's rate, SPEC S3; a
        traced 0-d array under ``jit``, S1); ``mask_seed`` may be traced too (S2).
        """
        if self.deterministic:
            return X
        rate = self.rate if rate is None else rate
        if mask_seed is not None:
            return dropout_layer(X, rate, seed=mask_seed, offset=self.offset)
        if self.rngs is None:
            raise TypeError(
                "Dropout in training mode needs rngs=nnx.Rngs(dropout=...) (JAX has no "
                "global generator), or call it with mask_seed= for the portable mask"
            )
        return dropout_layer(X, rate, key=self.rngs[self.rng_collection]())


class MLP(SpecRates, nnx.Module):
    """Flatten → Linear → ReLU → dropout1 → Linear → ReLU → dropout2 → Linear (SPEC M1).

    Parameters
    ----------
    num_inputs, num_outputs, num_hiddens1, num_hiddens2 : int
        Layer sizes.
    dropout1, dropout2 : float
        Drop probabilities after the first and second hidden ReLU.
    weights : dict of str to numpy.ndarray, optional
        Initial weights in the neutral layout of :mod:`dropout_ref.models.mlp_spec`;
        by default N(0, 0.01²) weights and zero biases drawn from ``rng``.
    rng : numpy.random.Generator or int, optional
        Source of the default init (NumPy, so ``MLP(rng=0)`` holds the same
        weights in every backend).
    rngs : nnx.Rngs, optional
        Source of the dropout keys (stream ``dropout``). By default
        ``nnx.Rngs(dropout=key)`` with a key drawn from ``rng`` when it is
        given (so ``MLP(rng=s)`` repeats its run exactly), else the next key of
        stream :data:`dropout_ref.jax.keys.KEYS`, which ``seed_global(s)`` restarts.

    """

    def __init__(
        self,
        num_inputs: int = 784,
        num_outputs: int = 10,
        num_hiddens1: int = 256,
        num_hiddens2: int = 256,
        dropout1: float = 0.2,
        dropout2: float = 0.5,
        *,
        weights: dict[str, np.ndarray] | None = None,
        rng: np.random.Generator | int | None = None,
        rngs: nnx.Rngs | None = None,
    ) -> None:
        self.spec = MLPSpec(num_inputs, num_hiddens1, num_hiddens2, num_outputs, dropout1, dropout2)
        initial = resolve_weights(self.spec, weights, rng)
        if rngs is None:
            rngs = nnx.Rngs(dropout=_default_dropout_key(rng))
        # The init is the neutral one (M5); nnx.Linear's own initializers are overwritten
        # below, so their key is a constant.
        init = nnx.Rngs(params=0)
        sizes = [(num_inputs, num_hiddens1), (num_hiddens1, num_hiddens2)]
        sizes.append((num_hiddens2, num_outputs))
        self.linear1, self.linear2, self.linear3 = (
            nnx.Linear(n_in, n_out, rngs=init) for n_in, n_out in sizes
        )
        self.dropout_1 = Dropout(dropout1, offset=DROPOUT_OFFSETS[0], rngs=rngs)
        self.dropout_2 = Dropout(dropout2, offset=DROPOUT_OFFSETS[1], rngs=rngs)
        self.set_weights(initial)

    def _param(self, name: str) -> nnx.Param:
        layer, attribute = _PARAMS[name]
        return getattr(getattr(self, layer), attribute)

    def get_weights(self) -> dict[str, np.ndarray]:
        """Return copies of the weights in the neutral layout (SPEC M5)."""
        return {name: np.array(self._param(name)[...], dtype=np.float32) for name in WEIGHT_NAMES}

    def set_weights(self, weights: dict[str, np.ndarray]) -> None:
        """Load weights in the neutral layout (SPEC M5); they are validated first."""
        for name, value in validate_weights(weights, self.spec).items():
            self._param(name)[...] = jnp.asarray(value)

    def __call__(self, X: Any, *, mask_seed: Any = None, rates: Any = None) -> jax.Array:
        """Return the logits of ``X``; dropout after each hidden ReLU only after ``train()``.

        Parameters
        ----------
        X : jax.Array
            A batch whose trailing dimensions hold ``num_inputs`` elements.
        mask_seed : int, optional
            Portable-mask seed for this step (SPEC P; a traced 0-d integer array
            under ``jit``, S2); ``None`` draws keys from the model's ``rngs``.
        rates : pair of float or 0-d arrays, optional
            The two hidden dropouts' rates for this call instead of ``dropout1``/
            ``dropout2`` (a schedule's rates, SPEC S3; traced under ``jit``, S1).

        """
        X = jnp.asarray(X, jnp.float32)
        X = X.reshape(flat_input_shape(X.shape, self.spec.num_inputs))
        rate1, rate2 = (None, None) if rates is None else rates
        H1 = self.dropout_1(nnx.relu(self.linear1(X)), mask_seed=mask_seed, rate=rate1)
        H2 = self.dropout_2(nnx.relu(self.linear2(H1)), mask_seed=mask_seed, rate=rate2)
        return self.linear3(H2)


# NNX's metaclass hides __init__'s parameters from inspect.signature(MLP); show them.
MLP.__signature__ = inspect.signature(MLP.__init__).replace(  # type: ignore[attr-defined]
    parameters=list(inspect.signature(MLP.__init__).parameters.values())[1:]
)
