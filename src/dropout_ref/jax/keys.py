"""A seedable stream of ``jax.random`` keys: the kit's stand-in for a global generator (D9).

JAX has no global generator. The conformance kit and the shared tests call every
backend as ``fn(X, p)`` with draws from a seedable global source; for JAX that
source is :data:`KEYS`, which ``BACKEND.arrays.seed_global`` restarts and
``BACKEND.ops.global_keep_mask`` draws from.
"""

from __future__ import annotations

import threading

import jax


class KeyStream:
    """A seedable source of fresh ``jax.random`` keys: the kit's stand-in for a global generator.

    Parameters
    ----------
    seed : int, optional
        Seed of the first key.

    """

    def __init__(self, seed: int = 0) -> None:
        self._lock = threading.Lock()
        self.seed(seed)

    def seed(self, seed: int) -> None:
        """Restart the stream at ``jax.random.key(seed)``."""
        with self._lock:
            self._key = jax.random.key(int(seed))

    def next(self) -> jax.Array:
        """Return a fresh key (the stream's key is split; one half is kept, one returned)."""
        with self._lock:
            self._key, out = jax.random.split(self._key)
        return out


#: The one stream of the jax backend.
KEYS = KeyStream(0)
