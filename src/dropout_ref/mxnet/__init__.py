"""MXNet backend (``from dropout_ref.mxnet import dropout_layer``).

Importing it restores NumPy's ``np.bool`` alias that MXNet 1.9.1 needs
(see :mod:`dropout_ref.mxnet.framework`).
"""

from dropout_ref.layer import make_dropout_layer
from dropout_ref.mxnet.arrays import MxnetArrays
from dropout_ref.mxnet.ops import MxnetOps

ops = MxnetOps()
arrays = MxnetArrays()
dropout_layer = make_dropout_layer(ops)


def fast_path_status() -> str:
    """Say which path calls on CPU contexts take here (``dropout-ref backends``)."""
    from dropout_ref.cpu_kernel import status_line

    return f"both modes on CPU: {status_line('MXNet ops')}"


# After dropout_layer exists: the model module imports it from here.
from dropout_ref.course.generate import generate  # noqa: E402
from dropout_ref.mxnet.mlp import MLP  # noqa: E402

__all__ = ["MLP", "arrays", "dropout_layer", "fast_path_status", "generate", "ops"]
