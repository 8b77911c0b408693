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

Compiled steps (SPEC P9)
------------------------
A backend that runs its contexts inside compiled code passes a
:class:`CompiledSites` to :class:`PortableMasks`. Entered INSIDE a trace
(``jax.jit``, ``tf.function``), the seed may be a traced integer and the sites
are numbered at trace time, from 0. Entered EAGERLY, the count (and the seed)
are run-time state that the backend owns (:class:`RunTimeSites`: a
``jax.Ref``, ``tf.Variable`` s): a site traced inside the context reads and
advances that state when the program runs, so a compiled step called k times
drops what k eager steps would, and one program serves every context's seed.
"""

from __future__ import annotations

import contextlib
import numbers
import threading
from collections.abc import Callable, Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Protocol

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

    ``compiled`` marks a site recorded while a compiled step was traced (SPEC P9): it is
    listed once per trace, not once per run, its rate is NaN where the rate is traced, and
    ``j`` is ``None`` where the number is run-time state (a context entered eagerly: the
    program reads the context's count when it runs).
    """

    j: int | None
    source: str
    shape: tuple[int | None, ...]
    rate: float
    noise_shape: tuple[int | None, ...] | None = None
    compiled: bool = False


class RunTimeSites(Protocol):
    """A backend's run-time seed and count of an eagerly entered context (SPEC P9).

    The backend keeps them where compiled programs can read and advance them in
    program order (JAX: a ``jax.Ref``; TensorFlow: ``tf.Variable`` s); eager sites
    advance the same count, so eager and compiled steps share one numbering.
    """

    def start(self, seed: int) -> None:
        """Set the seed and restart the count at 0 (context entry)."""

    def count(self) -> int:
        """Return how many sites have been numbered (waits for pending programs)."""

    def take(self) -> int:
        """Return the count for an eager site and advance it."""

    def traced(self, X: Any) -> bool:
        """Whether ``X`` is being traced into a compiled program."""

    def draw(self) -> tuple[Any, Any]:
        """Inside a trace: the run-time ``(seed, offset)`` of the next site; advance the count."""


class CompiledSites(Protocol):
    """What a backend tells :class:`PortableMasks` about traces (SPEC P9)."""

    def traced_seed(self, seed: Any) -> Any:
        """Return a checked traced seed, or ``None`` if ``seed`` is not traced."""

    def tracing(self) -> bool:
        """Whether the context is being entered inside a trace."""

    def open(self, counter: SiteCounter, in_trace: bool) -> RunTimeSites | None:
        """Prepare the context (e.g. the trace cache key); the run-time state if eager."""

    def close(self, counter: SiteCounter) -> None:
        """Undo :meth:`open`."""


@dataclass
class SiteCounter:
    """The sites of one context: ``next()`` hands out ``0, 1, 2, ...`` in call order."""

    #: An int, or (a context entered inside a trace, SPEC P9) a traced integer.
    seed: Any
    backend: str
    count: int = 0
    #: The first :data:`MAX_LOGGED_SITES` sites numbered (``ctx.sites``).
    sites: list[Site] = field(default_factory=list)
    #: Run-time seed and count of a context entered eagerly by a backend with compiled
    #: steps (SPEC P9); ``None``: the count is :attr:`count`, numbered in Python.
    runtime: RunTimeSites | None = None
    #: Whether the context was entered inside a trace (sites numbered at trace time).
    in_trace: bool = False

    def next(
        self,
        source: str,
        shape: Sequence[Any],
        rate: Any,
        noise_shape: Sequence[Any] | None = None,
    ) -> int:
        """Give the next training-mode dropout its number; return its offset ``j * 2**40``."""
        if self.runtime is not None:
            j = self.runtime.take()
            offset = site_offset(j)
        else:
            j = self.count
            offset = site_offset(j)
            self.count = j + 1
        self._log(j, source, shape, rate, noise_shape, compiled=self.in_trace)
        return offset

    def number(
        self,
        like: Any,
        source: str,
        shape: Sequence[Any],
        rate: Any,
        noise_shape: Sequence[Any] | None = None,
    ) -> None:
        """Give a site its number where the dropout drops nothing (a rate-0 shortcut, SPEC P8).

        D2 makes ``dropout_layer(W, 0)`` equal ``W``, so a door whose framework skips the
        weights at rate 0 only takes its number. ``like`` is an array of the call: where it is
        traced inside an eagerly entered context, the number is taken when the program runs
        (SPEC P9), as :meth:`apply` does.
        """
        runtime = self.runtime
        if runtime is not None and runtime.traced(like):
            runtime.draw()
            self._log(None, source, shape, rate, noise_shape, compiled=True)
        else:
            self.next(source, shape, rate, noise_shape)

    def total(self) -> int:
        """Return how many sites have been numbered (run-time count where there is one)."""
        return self.count if self.runtime is None else self.runtime.count()

    def _log(
        self,
        j: int | None,
        source: str,
        shape: Sequence[Any],
        rate: Any,
        noise_shape: Sequence[Any] | None,
        *,
        compiled: bool,
    ) -> None:
        if len(self.sites) >= MAX_LOGGED_SITES:
            return
        try:
            rate_value = float(rate)
        except (TypeError, ValueError):
            rate_value = float("nan")  # a symbolic rate: recorded as unknown
        noise = None if noise_shape is None else tuple(_dim(d) for d in noise_shape)
        shape_dims = tuple(_dim(d) for d in shape)
        self.sites.append(Site(j, source, shape_dims, rate_value, noise, compiled))

    def apply(
        self,
        dropout_layer: Callable[..., Any],
        X: Any,
        rate: Any,
        *,
        source: str,
        noise_shape: Sequence[Any] | None = None,
    ) -> Any:
        """Return ``dropout_layer(X, rate, seed=seed, offset=<next site>, noise_shape=...)``.

        A site traced inside an eagerly entered context takes its seed and offset from the
        run-time state (SPEC P9): the program numbers it when it runs.
        """
        shape = getattr(X, "shape", ())
        runtime = self.runtime
        if runtime is not None and runtime.traced(X):
            seed, offset = runtime.draw()
            self._log(None, source, shape, rate, noise_shape, compiled=True)
        else:
            seed, offset = self.seed, self.next(source, shape, rate, noise_shape)
        with suspended():
            return dropout_layer(X, rate, seed=seed, offset=offset, noise_shape=noise_shape)


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
    compiled : CompiledSites, optional
        The backend's trace handling (SPEC P9): a traced ``seed``, entry inside a
        trace, the run-time count of a context entered eagerly.

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
        compiled: CompiledSites | None = None,
    ) -> None:
        traced = None if compiled is None else compiled.traced_seed(seed)
        checked = validate_context_seed(seed) if traced is None else traced
        self.counter = SiteCounter(checked, backend)
        self._compiled = compiled
        self._patches = patches
        self._enter_hook = enter
        self._exit_hook = exit
        self._token: Any = None

    @property
    def seed(self) -> Any:
        """The context's seed (an int, or a traced integer: SPEC P9)."""
        return self.counter.seed

    @property
    def sites(self) -> list[Site]:
        """The sites numbered so far, in call order (the first :data:`MAX_LOGGED_SITES`)."""
        return self.counter.sites

    @property
    def count(self) -> int:
        """How many sites have been numbered since entry (compiled steps' run-time sites too)."""
        return self.counter.total()

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
        counter = self.counter
        counter.count = 0
        counter.sites.clear()
        compiled = self._compiled
        counter.in_trace = compiled is not None and compiled.tracing()
        if not counter.in_trace and not isinstance(counter.seed, numbers.Integral):
            raise TypeError(
                f"portable_masks got a traced seed ({counter.seed!r}) outside the trace it "
                "belongs to: enter the context inside the traced function (SPEC P9)"
            )
        if self._patches is not None:
            self._patches.acquire()
        try:
            if compiled is not None:
                counter.runtime = compiled.open(counter, counter.in_trace)
            if self._enter_hook is not None:
                self._enter_hook(counter)
        except BaseException:
            if compiled is not None:
                compiled.close(counter)
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
                try:
                    if self.counter.runtime is not None:  # keep the final count readable
                        self.counter.count = self.counter.runtime.count()
                    if self._compiled is not None:
                        self._compiled.close(self.counter)
                finally:
                    if self._patches is not None:
                        self._patches.release()
