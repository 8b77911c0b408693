"""The backend contract: everything the core and the tools ask of a framework, declared once.

A backend is one adapter package ``dropout_ref.<name>`` plus, for each tool
that covers it, one module of that tool. Nothing is discovered by naming
convention at run time: every hook is declared here, with what it must do.

The adapter (what :func:`dropout_ref.get_backend` returns)
    :class:`Backend`, a registration built in the adapter's ``__init__`` from

    - :class:`DropoutOps`: the primitives of dropout that differ between
      frameworks (abstract methods) and the optional fast paths and extensions
      (hooks with a documented default). The algorithm itself is written once,
      in :mod:`dropout_ref.core.layer`.
    - :class:`ArrayBridge`: moving data between NumPy and the framework,
      seeding its global generator, taking gradients. The tests, the
      conformance kit and the course tools speak to every backend through it.

Tool modules (:class:`ToolModule`)
    A tool that has per-framework code (the course models, the native
    audits, the bench cases) owns it, in ``dropout_ref.<tool>.<name>``
    modules with the same names in each; the tool declares here-shaped
    :class:`ToolModule` objects listing the names such a module must define
    and the optional ones with their defaults. :meth:`ToolModule.load`
    imports and checks a module and fails naming the missing name.

Like TensorLy's ``Backend`` registration and Keras 3's ``backend/<name>``
modules: only what truly differs lives in an adapter, and the contract test
(``tests/test_contract.py``) checks every installed backend against it.
"""

from __future__ import annotations

import abc
import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType, ModuleType
from typing import Any

import numpy as np

from dropout_ref.core.exports import exported_names


class NotApplicable(Exception):  # noqa: N818 - reads as a verdict, like the report's "n/a"
    """Raised when a framework cannot express a check (e.g. gradients in NumPy)."""


class ContractError(TypeError):
    """A backend or tool module does not provide a declared hook; the message names it."""


class DropoutOps(abc.ABC):
    """Primitives of inverted dropout for one framework.

    Subclasses implement every abstract method; the optional hooks below have
    a default that is correct for a backend without that feature.

    The mask primitives read only the shape and the device of ``X``: for
    structured dropout (SPEC D12) the core passes them the slice of ``X`` that
    has the noise shape (:func:`dropout_ref.core.layer.mask_template`), so they
    draw one decision per noise-shape element with no extra primitive.
    """

    #: Backend name, e.g. ``"torch"``.
    name: str
    #: Code converting an integer ``X`` to float32 in this framework, for error messages.
    conversion_hint: str

    # -- required -------------------------------------------------------------------------

    @abc.abstractmethod
    def check_array(self, X: Any) -> None:
        """Raise ``TypeError`` naming ``X`` if it is not this framework's array type."""

    @abc.abstractmethod
    def dtype_name(self, X: Any) -> str:
        """Return the canonical dtype name of ``X`` (``"float32"``, ``"int64"``, ...)."""

    @abc.abstractmethod
    def size(self, X: Any) -> int | None:
        """Return the number of elements of ``X``, or ``None`` if not known statically."""

    @abc.abstractmethod
    def constant_mask(self, X: Any, keep: bool) -> Any:
        """Return a bool mask of ``X``'s shape and device, all ``keep``."""

    @abc.abstractmethod
    def global_keep_mask(self, X: Any, dropout: float) -> Any:
        """Draw uniforms ``u`` from the framework's global generator; keep iff ``u >= dropout``.

        The comparison must be exact over the reals (D4): a backend drawing
        float32 uniforms compares with
        :func:`dropout_ref.core.thresholds.float32_threshold`. The mask has
        ``X``'s shape and lives on ``X``'s device.
        """

    @abc.abstractmethod
    def portable_keep_mask(self, X: Any, threshold: int, seed: int, offset: int) -> Any:
        """Return the Philox keep mask (P3): word ``>= threshold`` at counter ``offset + i``."""

    @abc.abstractmethod
    def select_scaled(self, X: Any, keep: Any, scale: float) -> Any:
        """Return ``where(keep, X * scale, +0.0)`` in ``X``'s dtype, differentiable in ``X``.

        ``keep`` has ``X``'s shape or a noise shape (entries 1 or ``X``'s size)
        that must broadcast to it (D12); the gradient uses the broadcast mask (D8).
        """

    @abc.abstractmethod
    def block_arrays(self, X: Any) -> Any:
        """Return the :class:`dropout_ref.core.blocks.BlockArrays` for ``X``'s device (SPEC P7).

        The core computes the mask of a non-contiguous block of a global array
        with these index and reshape primitives.
        """

    # -- optional hooks, with their defaults ----------------------------------------------

    def local_block(self, X: Any) -> tuple[Any, tuple[int, ...], tuple[int, ...], Callable] | None:
        """Split a distributed array into ``(local, global_shape, block_start, rewrap)`` (P7).

        Default ``None``: ``X`` is an ordinary array. torch returns the parts of
        a ``DTensor``; the core drops out the local block and rewraps it.
        """
        return None

    def fused_global_dropout(self, X: Any, dropout: float, scale: float) -> Any | None:
        """Default mode in one fused kernel, or ``None`` where no such kernel applies.

        When not ``None``, the result replaces ``global_keep_mask`` +
        ``select_scaled`` with the same D4-D11 contract. Called only for
        element-wise masks (no noise shape, no block, no key).
        """
        return None

    def fused_portable_dropout(
        self, X: Any, threshold: int, seed: int, offset: int, scale: float
    ) -> Any | None:
        """Portable mode in one fused kernel, or ``None``: bit for bit the unfused result."""
        return None

    def is_runtime(self, value: Any) -> bool:
        """Whether ``value`` (rate, seed or offset) is known only when compiled code runs (S1, S2).

        Default ``False``: every value is read on the host (D1). A backend with
        compiled steps returns ``True`` for its traced/symbolic 0-d tensors and
        implements :meth:`runtime_dropout`.
        """
        return False

    def runtime_dropout(
        self, X: Any, rate: Any, seed: Any, offset: Any, noise: Any, key: Any
    ) -> Any:
        """Dropout whose rate, seed or offset is a runtime 0-d tensor (SPEC S1, S2).

        ``rate`` is a checked Python float or a 0-d float tensor, ``seed`` ``None``,
        a checked int or a 0-d integer tensor, ``offset`` likewise; ``noise`` the
        checked noise shape. The result equals the eager call with the Python
        values bit for bit; an invalid runtime rate fails loudly or gives an
        all-NaN output. Default: refused with ``TypeError``.
        """
        raise TypeError(
            f"the {self.name} backend takes dropout, seed and offset as Python numbers only "
            "(no rate or seed known only inside compiled code); pass float(rate) and int(seed)"
        )

    def check_key(self, key: Any) -> None:
        """Refuse ``key=`` (the default) or check it is one key of the framework's generator.

        Only a framework without a global generator (JAX) accepts keys (D9 as
        amended for JAX); it overrides this and :meth:`keyed_keep_mask`.
        """
        raise TypeError(
            f"key= is not supported by the {self.name} backend; pass seed= for a "
            f"portable mask or nothing for {self.name}'s global generator"
        )

    def keyed_keep_mask(self, X: Any, dropout: float, key: Any) -> Any:
        """Return the keep mask drawn from ``key`` (see :meth:`check_key`)."""
        self.check_key(key)
        raise NotImplementedError(f"{type(self).__name__} accepts keys but draws no keyed mask")


class ArrayBridge(abc.ABC):
    """Data movement, seeding and gradients for one framework."""

    #: Backend name, e.g. ``"torch"``.
    name: str
    #: Floating dtypes this framework supports, canonical names.
    float_dtypes: tuple[str, ...]

    @abc.abstractmethod
    def from_numpy(self, array: np.ndarray, dtype: str | None = None) -> Any:
        """Return a framework array holding ``array`` (cast to ``dtype`` if given)."""

    @abc.abstractmethod
    def to_numpy(self, x: Any) -> np.ndarray:
        """Return ``x`` as a NumPy array (bfloat16 widened to float32)."""

    @abc.abstractmethod
    def dtype_name(self, x: Any) -> str:
        """Return the canonical dtype name of ``x``."""

    @abc.abstractmethod
    def device_name(self, x: Any) -> str:
        """Return a string naming the device that holds ``x``."""

    @abc.abstractmethod
    def seed_global(self, seed: int) -> None:
        """Seed the framework's global generator with its own seeding call (D9)."""

    @abc.abstractmethod
    def value_and_grad(
        self, fn: Callable[[Any], Any], x: Any, cotangent: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Return ``fn(x)`` and ``d sum(fn(x) * cotangent) / dx`` as NumPy arrays.

        Raises
        ------
        NotApplicable
            If the framework has no automatic differentiation.
        """

    def on_device(self, device: str) -> ArrayBridge:
        """Return a bridge whose arrays live on ``device`` (default: the CPU only).

        Raises
        ------
        ValueError
            If the device is unknown, absent from this machine or not offered here.
        """
        if str(device) == "cpu":
            return self
        raise ValueError(
            f"device={device!r}: the {self.name} backend is checked on the CPU only "
            "(device=None or 'cpu')"
        )

    def place_model(self, model: Any) -> Any:
        """Move a model to this bridge's device (default: it already is there)."""
        return model


def _no_fast_path() -> str:
    return "no fast path"


@dataclass(frozen=True)
class Backend:
    """The registration of one backend: what :func:`dropout_ref.get_backend` returns.

    Attributes
    ----------
    name : str
        Backend name, also the adapter's module name under ``dropout_ref``.
    ops : DropoutOps
        The primitives the core runs on.
    arrays : ArrayBridge
        The data bridge of the tests, the kit and the tools.
    dropout_layer : callable
        The public ``dropout_layer``.
    kit_dropout_layer : callable
        ``dropout_layer`` in the ``fn(X, p, *, seed=None, offset=0)`` convention
        the conformance kit calls: ``dropout_layer`` itself, except for a
        framework without a global generator (JAX), whose draws come from the
        bridge's seedable key stream.
    fast_path_status : callable
        ``() -> str`` saying which path calls take here (``dropout-ref backends``).
    """

    name: str
    ops: DropoutOps
    arrays: ArrayBridge
    dropout_layer: Callable[..., Any]
    kit_dropout_layer: Callable[..., Any] = None  # type: ignore[assignment]
    fast_path_status: Callable[[], str] = field(default=_no_fast_path)

    def __post_init__(self) -> None:
        for attribute, base in (("ops", DropoutOps), ("arrays", ArrayBridge)):
            value = getattr(self, attribute)
            if not isinstance(value, base):
                raise ContractError(
                    f"backend {self.name!r}: {attribute} must be a "
                    f"dropout_ref.core.contract.{base.__name__}, got {type(value).__name__}"
                )
            if value.name != self.name:
                raise ContractError(
                    f"backend {self.name!r}: {attribute}.name is {value.name!r}"
                )
        if self.kit_dropout_layer is None:
            object.__setattr__(self, "kit_dropout_layer", self.dropout_layer)

    @property
    def module(self) -> ModuleType:
        """The adapter package ``dropout_ref.<name>`` (models resolve lazily from it)."""
        return importlib.import_module(f"dropout_ref.{self.name}")

    def __getattr__(self, name: str) -> Any:
        """Return one of the adapter's lazily exported names (``MLP``, ``GPT``: :mod:`.exports`)."""
        if name in exported_names(self.__dict__["name"]):
            return getattr(self.module, name)
        raise AttributeError(f"{type(self).__name__} {self.__dict__['name']!r} has no {name!r}")


def kit_dropout_layer(backend: Backend) -> Callable[..., Any]:
    """Return ``backend.kit_dropout_layer``: ``fn(X, p, *, seed=None, offset=0)``."""
    return backend.kit_dropout_layer


@dataclass(frozen=True)
class ToolModule:
    """The per-backend module of one tool, and the names it must define.

    Parameters
    ----------
    tool : str
        What the module is for, for messages (``"native audit"``).
    pattern : str
        Its dotted path with ``{backend}``, e.g.
        ``"dropout_ref.conformance.natives.{backend}"``.
    backends : tuple of str
        The backends the tool covers: each must have the module.
    required : mapping of str to str
        Names the module must define, each with what it must be.
    optional : mapping of str to (object, str)
        Names it may define: the default used where it does not, and what it is.
    """

    tool: str
    pattern: str
    backends: tuple[str, ...]
    required: Mapping[str, str]
    optional: Mapping[str, tuple[Any, str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "required", MappingProxyType(dict(self.required)))
        object.__setattr__(self, "optional", MappingProxyType(dict(self.optional)))

    def path(self, backend: str) -> str:
        """Return the dotted module path of ``backend``'s module."""
        return self.pattern.format(backend=backend)

    def covers(self, backend: str) -> bool:
        """Whether the tool has a module for ``backend``."""
        return backend in self.backends

    def load(self, backend: str) -> ToolView:
        """Import ``backend``'s module, check it and return a view with the defaults filled in.

        Raises
        ------
        ValueError
            If the tool does not cover ``backend``.
        ContractError
            If the module lacks a required name; the message names it.
        """
        if not self.covers(backend):
            raise ValueError(
                f"the {self.tool} has no module for the {backend} backend; "
                f"it covers: {', '.join(self.backends)}"
            )
        module = importlib.import_module(self.path(backend))
        missing = [name for name in self.required if not hasattr(module, name)]
        if missing:
            raise ContractError(
                f"{module.__name__} ({self.tool} of the {backend} backend) does not define "
                + ", ".join(f"{name} ({self.required[name]})" for name in missing)
            )
        return ToolView(module, self)


class ToolView:
    """A checked tool module: its declared names, with defaults for the optional ones absent."""

    def __init__(self, module: ModuleType, tool: ToolModule) -> None:
        self.module = module
        self.tool = tool

    def __getattr__(self, name: str) -> Any:
        tool = self.__dict__["tool"]
        if name in tool.required:
            return getattr(self.__dict__["module"], name)
        if name in tool.optional:
            return getattr(self.__dict__["module"], name, tool.optional[name][0])
        raise AttributeError(
            f"{name!r} is not declared by the {tool.tool} contract "
            f"(declared: {', '.join([*tool.required, *tool.optional])})"
        )
