"""Call-order dropout sites (SPEC P8, X4, M6): the framework-free part of ``portable_masks``.

Inside ``dropout_ref.<backend>.portable_masks(seed)`` the j-th dropout that the
framework performs in training mode, counted from 0 at entry, draws
``dropout_layer(T, p, seed=seed, offset=site_offset(j))``. This module holds
what every backend shares: the seed check, the per-thread counter of sites,
the offsets ``j * 2**40`` (the numbering of our own models: M6's two hidden
layers use sites 0 and 1, X4's GPT sites ``0 .. 3 * n_layer``), the nesting
rule and the bookkeeping of the framework patches. It imports no framework.

Threads and nesting
-------------------
The counter lives in a :class:`contextvars.ContextVar`, so it belongs to the
thread (or asyncio task) that entered the context. Patches of module
attributes (TensorFlow, Keras, Flax, MXNet) are process-wide while any thread
holds a context, but every patched function first asks :func:`active` and, in a
thread without a context, calls the framework's original: other threads keep
their native dropout and are not numbered. (PyTorch's door,
``TorchFunctionMode``, is per thread anyway.) Entering a second context in a
thread that already holds one, of any backend, raises ``RuntimeError``; enter
and leave a context in the same thread.
"""

from __future__ import annotations

import contextlib
import numbers
import threading
from collections.abc import Callable, Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dropout_ref.core.validation import validate_seed

#: Philox counter distance between consecutive sites (SPEC P8, X4, M6: ``DROPOUT_OFFSETS``).
SITE_STRIDE = 2**40

#: Number of sites a context can number: offsets stay below the 64-bit counter space.
MAX_SITES = 2**64 // SITE_STRIDE

#: Sites kept in :attr:`SiteCounter.sites` for inspection; later ones are numbered, not kept
#: (a context held around a whole training run must not grow without bound).
MAX_LOGGED_SITES = 4096


def site_offset(j: int) -> int:
    """Return the Philox offset of site ``j``: ``j * 2**40`` (SPEC P8, X4, M6).

    Raises
    ------
    TypeError, ValueError
        If ``j`` is not an integer in ``[0, MAX_SITES)``.

    """
    if isinstance(j, (bool, np.bool_)) or not isinstance(j, numbers.Integral):
        raise TypeError(f"site index j must be an integer, got {j!r} ({type(j).__name__})")
    if not 0 <= j < MAX_SITES:
        raise ValueError(f"site index j must be in [0, {MAX_SITES}), got {j}")
    return int(j) * SITE_STRIDE


def validate_context_seed(seed: Any) -> int:
    """Check the seed of ``portable_masks``: an integer in ``[0, 2**64)`` (SPEC P3).

    Raises
    ------
    TypeError
        If ``seed`` is not an integer (``None``, bools and floats included).
    ValueError
        If ``seed`` is negative or ``>= 2**64``.

    """
    if seed is None:
        raise TypeError(
            "portable_masks needs seed= (an integer in [0, 2**64)), got None: the context "
            "exists to replace the framework's random masks with portable ones"
        )
    return validate_seed(seed, "seed")  # type: ignore[return-value]


@dataclass(frozen=True)
class Site:
    """One numbered dropout: its index, the door it came through, its shape, rate and noise shape.

    ``noise_shape`` is the call's mask structure (SPEC D12: Keras' ``noise_shape``, Flax's
    ``broadcast_dims`` or attention ``broadcast_dropout``, torch's channel dropouts), ``None``
    for element-wise dropout; two ports that drop the same tensor at the same rate but with
    another noise shape drop different elements, and a port check names that.
    """

    j: int
    source: str
    shape: tuple[int | None, ...]
    rate: float
    noise_shape: tuple[int | None, ...] | None = None


@dataclass
class SiteCounter:
    """The sites of one context: ``next()`` hands out ``0, 1, 2, ...`` in call order."""

    seed: int
    backend: str
    count: int = 0
    #: The first :data:`MAX_LOGGED_SITES` sites numbered (``ctx.sites``).
    sites: list[Site] = field(default_factory=list)

    def next(
        self,
        source: str,
        shape: Sequence[Any],
        rate: Any,
        noise_shape: Sequence[Any] | None = None,
    ) -> int:
        """Give the next training-mode dropout its number; return its offset ``j * 2**40``."""
        j = self.count
        offset = site_offset(j)
        self.count = j + 1
        if j >= MAX_LOGGED_SITES:
            return offset
        try:
            rate_value = float(rate)
        except (TypeError, ValueError):
            rate_value = float("nan")  # a symbolic rate: recorded as unknown
        noise = None if noise_shape is None else tuple(_dim(d) for d in noise_shape)
        self.sites.append(Site(j, source, tuple(_dim(d) for d in shape), rate_value, noise))
        return offset

    def apply(
        self,
        dropout_layer: Callable[..., Any],
        X: Any,
        rate: Any,
        *,
        source: str,
        noise_shape: Sequence[Any] | None = None,
    ) -> Any:
        """Return ``dropout_layer(X, rate, seed=seed, offset=<next site>, noise_shape=...)``."""
        offset = self.next(source, getattr(X, "shape", ()), rate, noise_shape)
        with suspended():
            return dropout_layer(X, rate, seed=self.seed, offset=offset, noise_shape=noise_shape)


def _dim(d: Any) -> int | None:
    try:
        return int(d)
    except (TypeError, ValueError):
        return None


_ACTIVE: ContextVar[SiteCounter | None] = ContextVar("dropout_ref_sites", default=None)


def active() -> SiteCounter | None:
    """Return this thread's (or task's) counter, ``None`` outside a context."""
    return _ACTIVE.get()


@contextlib.contextmanager
def suspended() -> Iterator[None]:
    """Run our own dropout with the context off, so framework calls inside it pass through."""
    token = _ACTIVE.set(None)
    try:
        yield
    finally:
        _ACTIVE.reset(token)


# --- patches of framework attributes, shared by all threads ---------------------------------


_MISSING = object()


@dataclass
class AttributePatch:
    """Replace ``owner.name`` by ``replacement`` while installed; restore it exactly after."""

    owner: Any
    name: str
    replacement: Any
    _saved: Any = field(default=_MISSING, init=False)

    @property
    def original(self) -> Any:
        """The attribute as the framework defines it (looked up through the owner)."""
        saved = self._saved
        if saved is _MISSING:
            return getattr(self.owner, self.name)
        return saved[1]

    def install(self) -> None:
        """Save the owner's own entry (if any) and set the replacement."""
        owned = vars(self.owner) if hasattr(self.owner, "__dict__") else {}
        own = owned.get(self.name, _MISSING)
        self._saved = (own, getattr(self.owner, self.name))
        setattr(self.owner, self.name, self.replacement)

    def uninstall(self) -> None:
        """Put back the owner's own entry, or delete ours where it inherited the attribute."""
        if self._saved is _MISSING:
            return
        own, _ = self._saved
        if own is _MISSING:
            delattr(self.owner, self.name)
        else:
            setattr(self.owner, self.name, own)
        self._saved = _MISSING


class PatchSet:
    """Patches installed while at least one thread holds a context of this backend.

    ``build()`` is called at the first install (it imports the framework modules and
    returns the patches); the last context to leave uninstalls them. A lock keeps
    concurrent enters and exits of different threads consistent.
    """

    def __init__(self, build: Callable[[], list[AttributePatch]]) -> None:
        self._build = build
        self._lock = threading.Lock()
        self._users = 0
        self._patches: list[AttributePatch] = []

    def acquire(self) -> None:
        """Install the patches if no other context holds them; count this user."""
        with self._lock:
            if self._users == 0:
                patches = self._build()
                done: list[AttributePatch] = []
                try:
                    for patch in patches:
                        patch.install()
                        done.append(patch)
                except BaseException:
                    for patch in reversed(done):
                        patch.uninstall()
                    raise
                self._patches = patches
            self._users += 1

    def release(self) -> None:
        """Uncount this user; the last one restores every patched attribute."""
        with self._lock:
            self._users -= 1
            if self._users == 0:
                for patch in reversed(self._patches):
                    patch.uninstall()
                self._patches = []

    @property
    def installed(self) -> bool:
        """Whether the framework is patched now (some thread holds a context)."""
        return self._users > 0


class PortableMasks:
    """The context manager behind every backend's ``portable_masks(seed)`` (SPEC P8).

    Parameters
    ----------
    seed : int
        In ``[0, 2**64)``: the Philox key of every site.
    backend : str
        The backend's name (for messages and :attr:`SiteCounter.backend`).
    patches : PatchSet, optional
        Process-wide attribute patches of the framework.
    enter, exit : callable, optional
        Per-context hooks (e.g. pushing a thread-local mode); ``exit`` always runs.

    Attributes
    ----------
    counter : SiteCounter
        The sites numbered so far (``.count``, ``.sites``).

    """

    def __init__(
        self,
        seed: Any,
        backend: str,
        *,
        patches: PatchSet | None = None,
        enter: Callable[[SiteCounter], None] | None = None,
        exit: Callable[[SiteCounter], None] | None = None,
    ) -> None:
        self.counter = SiteCounter(validate_context_seed(seed), backend)
        self._patches = patches
        self._enter_hook = enter
        self._exit_hook = exit
        self._token: Any = None

    @property
    def seed(self) -> int:
        """The context's seed."""
        return self.counter.seed

    @property
    def sites(self) -> list[Site]:
        """The sites numbered so far, in call order (the first :data:`MAX_LOGGED_SITES`)."""
        return self.counter.sites

    @property
    def count(self) -> int:
        """How many sites have been numbered since entry."""
        return self.counter.count

    def __enter__(self) -> PortableMasks:
        current = _ACTIVE.get()
        if current is not None or self._token is not None:
            holder = current or self.counter
            raise RuntimeError(
                f"portable_masks is already active in this thread ({holder.backend}, "
                f"seed={holder.seed}, {holder.count} sites numbered); nesting is not "
                "supported: leave the outer context first (SPEC P8)"
            )
        # Numbering starts at 0 at every entry (P8), also when this object is re-entered.
        self.counter.count = 0
        self.counter.sites.clear()
        if self._patches is not None:
            self._patches.acquire()
        try:
            if self._enter_hook is not None:
                self._enter_hook(self.counter)
        except BaseException:
            if self._patches is not None:
                self._patches.release()
            raise
        self._token = _ACTIVE.set(self.counter)
        return self

    def __exit__(self, *exc_info: object) -> None:
        try:
            _ACTIVE.reset(self._token)
        finally:
            self._token = None
            try:
                if self._exit_hook is not None:
                    self._exit_hook(self.counter)
            finally:
                if self._patches is not None:
                    self._patches.release()
