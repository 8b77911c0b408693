"""The course MLP as a ``torch.nn.Module`` (SPEC M1-M5).

Dropout follows the module's training flag: ``model.train()`` /
``model.eval()`` (M2). The parameters are ``nn.Parameter`` s named and laid
out as in :mod:`dropout_ref.models.mlp_spec` (``H = X @ W + b``).
"""



from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from dropout_ref.models.mlp_spec import (
    DROPOUT_OFFSETS,
    WEIGHT_NAMES,
    MLPSpec,
    SpecRates,
    flat_input_shape,
    resolve_weights,
    validate_weights,
)
from dropout_ref.torch import dropout_layer


class MLP(SpecRates, nn.Module):
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
        super().__init__()
        self.spec = MLPSpec(num_inputs, num_hiddens1, num_hiddens2, num_outputs, dropout1, dropout2)
        for name, value in resolve_weights(self.spec, weights, rng).items():
            self.register_parameter(name, nn.Parameter(torch.from_numpy(value)))

    def get_weights(self) -> dict[str, np.ndarray]:
        """Return copies of the weights in the neutral layout (SPEC M5)."""
        return {
            name: getattr(self, name).detach().cpu().numpy().copy() for name in WEIGHT_NAMES
        }

    def set_weights(self, weights: dict[str, np.ndarray]) -> None:
        """Load weights in the neutral layout (SPEC M5), keeping each parameter's device."""
        checked = validate_weights(weights, self.spec)
        with torch.no_grad():
            for name, value in checked.items():
                param = getattr(self, name)
                param.copy_(torch.from_numpy(value).to(device=param.device, dtype=param.dtype))

    def forward(
        self, X: torch.Tensor, mask_seed: int | None = None, rates: Any = None
    ) -> torch.Tensor:
        """Return the logits of ``X``; dropout after each hidden ReLU only in ``train()`` mode.

        Parameters
        ----------
        X : torch.Tensor
            A batch whose trailing dimensions hold ``num_inputs`` elements.
        mask_seed : int, optional
            Portable-mask seed for this step (SPEC P); ``None`` draws from
            torch's global generator.
        rates : pair of float or 0-d tensors, optional
            The two hidden dropouts' rates for this call instead of ``dropout1``/
            ``dropout2``: a schedule's rates (SPEC S3), runtime tensors in compiled steps (S1).

        """
        X = X.reshape(flat_input_shape(X.shape, self.spec.num_inputs)).to(self.W1.dtype)
        rate1, rate2 = (self.dropout1, self.dropout2) if rates is None else rates
        H1 = torch.relu(X @ self.W1 + self.b1)
        if self.training:
            H1 = dropout_layer(H1, rate1, seed=mask_seed, offset=DROPOUT_OFFSETS[0])
        H2 = torch.relu(H1 @ self.W2 + self.b2)
        if self.training:
            H2 = dropout_layer(H2, rate2, seed=mask_seed, offset=DROPOUT_OFFSETS[1])
        return H2 @ self.W3 + self.b3
