"""NumPy backend, the oracle (``from dropout_ref.numpy import dropout_layer, MLP``)."""

from dropout_ref.core.contract import Backend
from dropout_ref.core.drop_family import make_drop_family
from dropout_ref.core.exports import exported_names, lazy_exports
from dropout_ref.core.layer import make_dropout_layer
from dropout_ref.numpy.arrays import NumpyArrays
from dropout_ref.numpy.ops import NumpyOps


def fast_path_status() -> str:
    """Say which path ``seed=`` calls take here (``dropout-ref backends``)."""
    from dropout_ref.kernels.cpu import status_line

    return f"seed=: {status_line()}"


_OPS = NumpyOps()
dropout_layer = make_dropout_layer(_OPS)
# DropPath and DropHead (SPEC V1, V2): structured dropout_layer calls.
drop_path, drop_head = make_drop_family(_OPS, dropout_layer)
BACKEND = Backend("numpy", _OPS, NumpyArrays(), dropout_layer, fast_path_status=fast_path_status)

# The course's models and portable_masks resolve on first use (no import circle).
__getattr__ = lazy_exports(__name__)

__all__ = ["BACKEND", "dropout_layer", "drop_path", "drop_head", *exported_names("numpy")]
