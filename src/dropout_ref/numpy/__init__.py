"""NumPy backend: the oracle (``from dropout_ref.numpy import dropout_layer``)."""

from dropout_ref.layer import make_dropout_layer
from dropout_ref.numpy.arrays import NumpyArrays
from dropout_ref.numpy.ops import NumpyOps

ops = NumpyOps()
arrays = NumpyArrays()
dropout_layer = make_dropout_layer(ops)


def fast_path_status() -> str:
    """Say which path ``seed=`` calls take here (``dropout-ref backends``)."""
    from dropout_ref.cpu_kernel import status_line

    return f"seed=: {status_line()}"


# After dropout_layer exists: the model module imports it from here.
from dropout_ref.course.generate import generate  # noqa: E402
from dropout_ref.numpy.mlp import MLP  # noqa: E402

__all__ = ["GPT", "MLP", "arrays", "dropout_layer", "fast_path_status", "generate", "ops"]


def __getattr__(name: str):
    # Resolved on first use: dropout_ref.course.numpy.gpt imports dropout_layer from here.
    if name == "GPT":
        from dropout_ref.course.numpy.gpt import GPT

        return GPT
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
