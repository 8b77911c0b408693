"""TensorFlow backend (``from dropout_ref.tensorflow import dropout_layer``)."""

from dropout_ref.layer import make_dropout_layer
from dropout_ref.tensorflow.arrays import TensorflowArrays
from dropout_ref.tensorflow.ops import TensorflowOps

ops = TensorflowOps()
arrays = TensorflowArrays()
dropout_layer = make_dropout_layer(ops)

# After dropout_layer exists: the model module imports it from here.
from dropout_ref.course.generate import generate  # noqa: E402
from dropout_ref.tensorflow.mlp import MLP  # noqa: E402

__all__ = ["GPT", "MLP", "arrays", "dropout_layer", "generate", "ops"]


def __getattr__(name: str):
    # Resolved on first use: dropout_ref.course.tensorflow.gpt imports dropout_layer from here.
    if name == "GPT":
        from dropout_ref.course.tensorflow.gpt import GPT

        return GPT
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
