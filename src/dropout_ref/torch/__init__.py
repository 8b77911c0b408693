"""PyTorch backend (``from dropout_ref.torch import dropout_layer``)."""

from dropout_ref.layer import make_dropout_layer
from dropout_ref.torch import custom_ops  # noqa: F401  (registers the dropout_ref:: operators)
from dropout_ref.torch.arrays import TorchArrays
from dropout_ref.torch.ops import TorchOps

ops = TorchOps()
arrays = TorchArrays()
dropout_layer = make_dropout_layer(ops)

# After dropout_layer exists: the model module imports it from here.
from dropout_ref.course.generate import generate  # noqa: E402
from dropout_ref.torch.mlp import MLP  # noqa: E402

__all__ = ["GPT", "MLP", "arrays", "dropout_layer", "generate", "ops"]


def __getattr__(name: str):
    # Resolved on first use: dropout_ref.course.torch.gpt imports dropout_layer from here.
    if name == "GPT":
        from dropout_ref.course.torch.gpt import GPT

        return GPT
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
