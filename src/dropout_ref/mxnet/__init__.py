"""MXNet backend (``from dropout_ref.mxnet import dropout_layer, MLP``).

Importing it restores NumPy's ``np.bool`` alias that MXNet 1.9.1 needs
(see :mod:`dropout_ref.mxnet.framework`).
"""

from dropout_ref.core.contract import Backend
from dropout_ref.core.drop_family import make_drop_family
from dropout_ref.core.exports import exported_names, lazy_exports
from dropout_ref.core.layer import make_dropout_layer
from dropout_ref.mxnet.arrays import MxnetArrays
from dropout_ref.mxnet.ops import MxnetOps


def fast_path_status() -> str:
    """Say which path calls on CPU contexts take here (``dropout-ref backends``)."""
    from dropout_ref.kernels.cpu import status_line

    return f"both modes on CPU: {status_line('MXNet ops')}"


_OPS = MxnetOps()
dropout_layer = make_dropout_layer(_OPS)
# DropPath and DropHead (SPEC V1, V2): structured dropout_layer calls.
drop_path, drop_head = make_drop_family(_OPS, dropout_layer)
BACKEND = Backend("mxnet", _OPS, MxnetArrays(), dropout_layer, fast_path_status=fast_path_status)

# The course's models and portable_masks resolve on first use (no import circle).
__getattr__ = lazy_exports(__name__)

__all__ = ["BACKEND", "dropout_layer", "drop_path", "drop_head", *exported_names("mxnet")]
