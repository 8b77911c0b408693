"""The course MLP as a Gluon ``Block`` on ``mxnet.numpy`` arrays (SPEC M1-M5).

Dropout applies only while ``autograd.is_training()``, i.e. inside
``autograd.record()`` (train mode), exactly as the course's MXNet ``net`` (M2).
The class is wrapped in ``mx.util.use_np``, Gluon's way of running one block
in the numpy semantics of ``npx.set_np()`` without switching them on for the
whole process. A plain ``Block`` rather than a ``HybridBlock``: the per-step ``mask_seed``
is a Python int that a hybridized graph would bake in.
"""



from __future__ import annotations

import numpy as np

from dropout_ref.models.mlp_spec import (
    DROPOUT_OFFSETS,
    WEIGHT_NAMES,
    MLPSpec,
    SpecRates,
    flat_input_shape,
    resolve_weights,
    validate_weights,
)
from dropout_ref.mxnet import dropout_layer
from dropout_ref.mxnet.framework import autograd, gluon, mnp, mx, npx


@mx.util.use_np
class MLP(SpecRates, gluon.Block):
    """Flatten → Dense → ReLU → dropout1 → Dense → ReLU → dropout2 → Dense (SPEC M1).

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
        super().__init__()
        self.spec = MLPSpec(num_inputs, num_hiddens1, num_hiddens2, num_outputs, dropout1, dropout2)
        initial = resolve_weights(self.spec, weights, rng)
        with self.name_scope():
            for name, value in initial.items():
                setattr(self, name, self.params.get(name, shape=value.shape, init=mx.init.Zero()))
        self.initialize(ctx=mx.cpu())
        self._load(initial)

    def weight_params(self) -> dict[str, gluon.Parameter]:
        """Return the Gluon parameters by neutral name (Gluon prefixes its own names)."""
        return {name: getattr(self, name) for name in WEIGHT_NAMES}

    def _load(self, checked: dict[str, np.ndarray]) -> None:
        for name, param in self.weight_params().items():
            param.set_data(mnp.array(checked[name], dtype="float32"))

    def get_weights(self) -> dict[str, np.ndarray]:
        """Return copies of the weights in the neutral layout (SPEC M5)."""
        return {name: param.data().asnumpy().copy() for name, param in self.weight_params().items()}

    def set_weights(self, weights: dict[str, np.ndarray]) -> None:
        """Load weights in the neutral layout (SPEC M5); they are validated first."""
        self._load(validate_weights(weights, self.spec))

    def forward(self, X, mask_seed: int | None = None, rates=None):
        """Return the logits of ``X``; dropout only while ``autograd.is_training()``.

        Parameters
        ----------
        X : mxnet.numpy.ndarray
            A batch whose trailing dimensions hold ``num_inputs`` elements.
        mask_seed : int, optional
            Portable-mask seed for this step (SPEC P); ``None`` draws from
            MXNet's global generator.
        rates : pair of float or 0-d tensors, optional
            The two hidden dropouts' rates for this call instead of ``dropout1``/
            ``dropout2``: a schedule's rates (SPEC S3), runtime tensors in compiled steps (S1).

        """
        p = {name: param.data() for name, param in self.weight_params().items()}
        if not isinstance(X, mnp.ndarray):
            X = X.as_np_ndarray()
        X = X.reshape(flat_input_shape(X.shape, self.spec.num_inputs)).astype("float32")
        rate1, rate2 = (self.dropout1, self.dropout2) if rates is None else rates
        H1 = npx.relu(mnp.dot(X, p["W1"]) + p["b1"])
        if autograd.is_training():
            H1 = dropout_layer(H1, rate1, seed=mask_seed, offset=DROPOUT_OFFSETS[0])
        H2 = npx.relu(mnp.dot(H1, p["W2"]) + p["b2"])
        if autograd.is_training():
            H2 = dropout_layer(H2, rate2, seed=mask_seed, offset=DROPOUT_OFFSETS[1])
        return mnp.dot(H2, p["W3"]) + p["b3"]
