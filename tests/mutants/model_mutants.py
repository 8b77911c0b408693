"""Wrong MLPs: each must be caught by the model clauses M2-M4."""

# ruff: noqa: N811 - X, H1, H2 are the course's names; MLP is a class

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from dropout_ref.numpy import MLP as NumpyMLP
from dropout_ref.numpy import dropout_layer


class EvalStillDrops(NumpyMLP):
    """Ignores the training flag: drops in evaluation too."""

    def forward(self, X: Any, *, training: bool, mask_seed: int | None = None) -> np.ndarray:
        return super().forward(X, training=True, mask_seed=mask_seed)

    __call__ = forward


class _Wired(NumpyMLP):
    """A forward pass that places dropout somewhere else (set by subclasses)."""

    where = "hidden"

    def forward(self, X: Any, *, training: bool, mask_seed: int | None = None) -> np.ndarray:
        p = self.params
        X = np.asarray(X, np.float32).reshape(-1, self.spec.num_inputs)
        if training and self.where == "input":
            X = dropout_layer(X, self.dropout1)
        H1 = np.maximum(X @ p["W1"] + p["b1"], np.float32(0))
        if training and self.where != "input":
            H1 = dropout_layer(H1, self.dropout1)
        H2 = np.maximum(H1 @ p["W2"] + p["b2"], np.float32(0))
        if training and self.where == "hidden":
            H2 = dropout_layer(H2, self.dropout2)
        logits = H2 @ p["W3"] + p["b3"]
        if training and self.where == "output":
            logits = dropout_layer(logits, self.dropout2)
        return logits

    __call__ = forward


class DropsTheLogits(_Wired):
    """dropout2 on the output layer instead of after the second hidden ReLU."""

    where = "output"


class DropsTheInput(_Wired):
    """dropout1 on the input instead of after the first hidden ReLU."""

    where = "input"


def torch_eval_still_drops():
    """The torch MLP with a forward that drops whatever ``model.eval()`` says."""
    from dropout_ref.torch import MLP

    class TorchEvalStillDrops(MLP):
        def forward(self, X, mask_seed=None):
            was = self.training
            self.training = True
            try:
                return super().forward(X, mask_seed)
            finally:
                self.training = was

    return TorchEvalStillDrops


@dataclass(frozen=True)
class ModelMutant:
    """A wrong model and the clauses that must catch it."""

    name: str
    backend: str
    make: Any
    caught_by: tuple[str, ...]


MODEL_MUTANTS = [
    ModelMutant("eval_still_drops", "numpy", lambda: EvalStillDrops, ("M2", "M3")),
    ModelMutant("torch_eval_still_drops", "torch", torch_eval_still_drops, ("M2", "M3")),
    ModelMutant("drops_the_logits", "numpy", lambda: DropsTheLogits, ("M4",)),
    ModelMutant("drops_the_input", "numpy", lambda: DropsTheInput, ("M4",)),
]
