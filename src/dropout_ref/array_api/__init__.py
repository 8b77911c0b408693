"""Array API backend, for any Array API standard namespace.

``from dropout_ref.array_api import dropout_layer``:
``dropout_layer(X, dropout, *, seed=None, offset=0, noise_shape=None, ...)`` for
an ``X`` of any namespace that array-api-compat knows: ``array_api_strict``,
NumPy, and (where installed) torch, CuPy, Dask, JAX. The output is an array of
``X``'s namespace, on ``X``'s device.

- ``seed=`` (portable, SPEC P): Philox4x32-10 in the namespace's own ``int64``
  ops, bit for bit the mask of every other backend.
- ``seed=None``: the standard has no random generator, so the mask is drawn
  from NumPy's global generator on the host (``np.random.seed`` makes a run
  reproducible) and moved to ``X``'s device with ``xp.asarray``.

No gradients (the standard has no autodiff) and no course models: the course
MLP, the native audit and the bench cases do not cover this backend.
"""

from dropout_ref.array_api.arrays import ArrayApiArrays
from dropout_ref.array_api.ops import ArrayApiOps
from dropout_ref.core.contract import Backend
from dropout_ref.core.drop_family import make_drop_family
from dropout_ref.core.exports import lazy_exports
from dropout_ref.core.layer import make_dropout_layer


def fast_path_status() -> str:
    """Say which paths calls take here (``dropout-ref backends``)."""
    kit = BACKEND.arrays.xp.__name__
    return f"seed=: int64 Philox in X's namespace; seed=None: np.random; kit on {kit}"


_OPS = ArrayApiOps()
dropout_layer = make_dropout_layer(_OPS)
# DropPath and DropHead (SPEC V1, V2): structured dropout_layer calls.
drop_path, drop_head = make_drop_family(_OPS, dropout_layer)
BACKEND = Backend(
    "array_api", _OPS, ArrayApiArrays(), dropout_layer, fast_path_status=fast_path_status
)

# The course covers no model here; the hook says so for MLP and the other course names.
__getattr__ = lazy_exports(__name__)

__all__ = ["BACKEND", "drop_head", "drop_path", "dropout_layer"]
