"""What an adapter provides: the interface between the neutral core and a framework.

Each adapter package ``dropout_ref.<name>`` holds two small objects:

- ``ops`` (:class:`DropoutOps`): the handful of primitives that dropout needs
  and that differ between frameworks. The algorithm itself is written once,
  in :mod:`dropout_ref.layer`.
- ``arrays`` (:class:`ArrayBridge`): moving data between NumPy and the
  framework, seeding its global generator and taking gradients. The tests,
  the conformance kit and the training code use it to speak to every backend
  through one interface.

Like TensorLy's backends or Keras 3's ``backend/<name>``, only what truly
differs lives in an adapter.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import numpy as np


class NotApplicable(Exception):  # noqa: N818 - reads as a verdict, like the report's "n/a"
    """Raised when a framework cannot express a check (e.g. gradients in NumPy)."""


class DropoutOps(Protocol):
    """Primitives of inverted dropout for one framework."""

    #: Backend name, e.g. ``"torch"``.
    name: str
    #: Code converting an integer ``X`` to float32 in this framework, for error messages.
    conversion_hint: str

    def check_array(self, X: Any) -> None:
        """Raise ``TypeError`` naming ``X`` if it is not this framework's array type."""

    def dtype_name(self, X: Any) -> str:
        """Return the canonical dtype name of ``X`` (``"float32"``, ``"int64"``, ...)."""

    def size(self, X: Any) -> int | None:
        """Return the number of elements of ``X``, or ``None`` if not known statically."""

    # The mask primitives below read only the shape and the device of ``X``: for
    # structured dropout (SPEC D12) the core passes them the slice of ``X`` that
    # has the noise shape (``layer.mask_template``), so they draw one decision per
    # noise-shape element with no extra primitive.

    def constant_mask(self, X: Any, keep: bool) -> Any:
        """Return a bool mask of ``X``'s shape and device, all ``keep``."""

    def global_keep_mask(self, X: Any, dropout: float) -> Any:
        """Draw uniforms ``u`` from the framework's global generator; keep iff ``u >= dropout``.

        The comparison must be exact over the reals (D4): a backend drawing
        float32 uniforms compares with
        :func:`dropout_ref.thresholds.float32_threshold`. The mask has ``X``'s
        shape and lives on ``X``'s device.
        """

    def portable_keep_mask(self, X: Any, threshold: int, seed: int, offset: int) -> Any:
        """Return the Philox keep mask (SPEC P): word ``>= threshold`` at counter ``offset + i``."""

    def select_scaled(self, X: Any, keep: Any, scale: float) -> Any:
        """Return ``where(keep, X * scale, +0.0)`` in ``X``'s dtype, differentiable in ``X``.

        ``keep`` has ``X``'s shape or a noise shape (entries 1 or ``X``'s size)
        that must broadcast to it (D12); the gradient uses the broadcast mask (D8).
        """

    # Optional: ``fused_global_dropout(X, dropout, scale) -> array | None``. When
    # present and not ``None``, its result replaces ``global_keep_mask`` +
    # ``select_scaled`` (same D4-D11 contract, one fused kernel).
    # Optional: ``fused_portable_dropout(X, threshold, seed, offset, scale) -> array | None``:
    # the same for ``seed=`` calls, bit for bit ``portable_keep_mask`` + ``select_scaled``.
    # The core calls fused hooks only for element-wise masks (``noise_shape`` None or
    # full, no block, no ``key``).


class ArrayBridge(Protocol):
    """Data movement, seeding and gradients for one framework."""

    #: Backend name, e.g. ``"torch"``.
    name: str
    #: Floating dtypes this framework supports, canonical names.
    float_dtypes: tuple[str, ...]

    def from_numpy(self, array: np.ndarray, dtype: str | None = None) -> Any:
        """Return a framework array holding ``array`` (cast to ``dtype`` if given)."""

    def to_numpy(self, x: Any) -> np.ndarray:
        """Return ``x`` as a NumPy array (bfloat16 widened to float32)."""

    def dtype_name(self, x: Any) -> str:
        """Return the canonical dtype name of ``x``."""

    def device_name(self, x: Any) -> str:
        """Return a string naming the device that holds ``x``."""

    def seed_global(self, seed: int) -> None:
        """Seed the framework's global generator with its own seeding call (D9)."""

    def value_and_grad(
        self, fn: Callable[[Any], Any], x: Any, cotangent: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Return ``fn(x)`` and ``d sum(fn(x) * cotangent) / dx`` as NumPy arrays.

        Raises
        ------
        NotApplicable
            If the framework has no automatic differentiation.
        """


def kit_dropout_layer(adapter: Any) -> Callable[..., Any]:
    """Return an adapter's ``dropout_layer`` in the ``fn(X, p, *, seed=None, offset=0)`` convention.

    That is ``dropout_layer`` itself, except for a framework without a global
    generator (JAX), whose adapter offers ``kit_dropout_layer`` drawing its
    keys from the array bridge's seedable stream; the conformance kit and the
    shared tests call every backend through this.
    """
    return getattr(adapter, "kit_dropout_layer", adapter.dropout_layer)
