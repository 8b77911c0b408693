"""The course MLP in NumPy, with its own backward pass so that it trains (SPEC M1-M5).

NumPy has no train/eval mode, so ``forward`` takes an explicit ``training``
flag (M2).
"""



from __future__ import annotations

from typing import Any

import numpy as np

from dropout_ref.core.thresholds import inverse_keep_scale
from dropout_ref.models.mlp_spec import (
    DROPOUT_OFFSETS,
    WEIGHT_NAMES,
    MLPSpec,
    SpecRates,
    flat_input_shape,
    resolve_weights,
    validate_weights,
)
from dropout_ref.numpy import dropout_layer


def _batch_sum(g: np.ndarray) -> np.ndarray:
    """Sum ``g`` over the batch axis, accumulated in float64 and rounded once to float32.

    NumPy sums along axis 0 of a C-ordered array row by row (no pairwise
    summation on a strided axis), an error growing like ``n * eps``; as the
    oracle for the bias gradients this reference should be the accurate one
    (MXNet accumulates its reductions more precisely; see docs/compare.md).
    """
    return g.sum(axis=0, dtype=np.float64).astype(np.float32)


def _relu_dropout_grad(grad_out: np.ndarray, out: np.ndarray, rate: float) -> np.ndarray:
    """Gradient through ``out = dropout(relu(Z))`` with respect to ``Z``.

    ``d out / d Z = [Z > 0] * keep / (1 - rate)`` (D8), and for ReLU inputs
    ``out > 0`` holds exactly when ``Z > 0`` and the element was kept (a
    positive float32 times a scale >= 1 stays positive). So the mask
    dropout_layer drew is read off its output, and dropout is applied by
    ``dropout_layer`` alone, never re-implemented here.
    """
    active = out > 0
    if rate == 0.0 or rate == 1.0:  # identity (D2) or all dropped (D3): no scale to apply
        return np.where(active, grad_out, np.float32(0))
    scale = np.float32(inverse_keep_scale(rate))
    return np.where(active, grad_out * scale, np.float32(0))


class MLP(SpecRates):
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
        Source of the default init.

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
    ) -> None:
        self.spec = MLPSpec(num_inputs, num_hiddens1, num_hiddens2, num_outputs, dropout1, dropout2)
        self.params = resolve_weights(self.spec, weights, rng)
        self._cache: dict[str, np.ndarray] | None = None

    def get_weights(self) -> dict[str, np.ndarray]:
        """Return copies of the weights in the neutral layout (SPEC M5)."""
        return {name: self.params[name].copy() for name in WEIGHT_NAMES}

    def set_weights(self, weights: dict[str, np.ndarray]) -> None:
        """Load weights in the neutral layout (SPEC M5); they are validated and copied."""
        self.params = validate_weights(weights, self.spec)

    def forward(
        self, X: Any, *, training: bool, mask_seed: int | None = None, rates: Any = None
    ) -> np.ndarray:
        """Return the logits of ``X``; dropout after each hidden ReLU only if ``training``.

        Parameters
        ----------
        X : numpy.ndarray
            A batch whose trailing dimensions hold ``num_inputs`` elements
            (e.g. ``(n, 1, 28, 28)`` or ``(n, 784)``).
        training : bool
            Apply dropout (M2, M4); with ``False`` the result is deterministic (M3).
        mask_seed : int, optional
            Portable-mask seed for this step (SPEC P); ``None`` draws from
            ``np.random``.
        rates : pair of float or 0-d tensors, optional
            The two hidden dropouts' rates for this call instead of ``dropout1``/
            ``dropout2``: a schedule's rates (SPEC S3), runtime tensors in compiled steps (S1).

        Returns
        -------
        numpy.ndarray
            float32 logits of shape ``(n, num_outputs)``.

        """
        if not isinstance(training, (bool, np.bool_)):
            raise TypeError(f"training must be True or False, got {training!r}")
        X = np.asarray(X)
        X = X.reshape(flat_input_shape(X.shape, self.spec.num_inputs)).astype(np.float32)
        p = self.params
        rate1, rate2 = (self.dropout1, self.dropout2) if rates is None else rates
        H1 = np.maximum(X @ p["W1"] + p["b1"], np.float32(0))
        if training:
            H1 = dropout_layer(H1, rate1, seed=mask_seed, offset=DROPOUT_OFFSETS[0])
        H2 = np.maximum(H1 @ p["W2"] + p["b2"], np.float32(0))
        if training:
            H2 = dropout_layer(H2, rate2, seed=mask_seed, offset=DROPOUT_OFFSETS[1])
        logits = H2 @ p["W3"] + p["b3"]
        self._cache = {"X": X, "H1": H1, "H2": H2, "training": np.bool_(training)}
        return logits

    __call__ = forward

    def backward(self, grad_logits: np.ndarray) -> dict[str, np.ndarray]:
        """Return the gradient of every weight from ``d loss / d logits`` of the last forward.

        Parameters
        ----------
        grad_logits : numpy.ndarray
            Gradient of the loss with respect to the logits the last
            :meth:`forward` returned, shape ``(n, num_outputs)``.

        Returns
        -------
        dict of str to numpy.ndarray
            float32 gradients, by weight name.

        Raises
        ------
        RuntimeError
            If no forward pass came first.

        """
        if self._cache is None:
            raise RuntimeError("backward() needs a forward() first")
        cache, p = self._cache, self.params
        rates = self.spec.rates if cache["training"] else (0.0, 0.0)
        g = np.asarray(grad_logits, dtype=np.float32)
        grads = {"W3": cache["H2"].T @ g, "b3": _batch_sum(g)}
        g = _relu_dropout_grad(g @ p["W3"].T, cache["H2"], rates[1])
        grads["W2"], grads["b2"] = cache["H1"].T @ g, _batch_sum(g)
        g = _relu_dropout_grad(g @ p["W2"].T, cache["H1"], rates[0])
        grads["W1"], grads["b1"] = cache["X"].T @ g, _batch_sum(g)
        return {name: grads[name].astype(np.float32, copy=False) for name in WEIGHT_NAMES}
