"""PyTorch backend (``from dropout_ref.torch import dropout_layer, MLP``)."""

from dropout_ref.core.contract import Backend
from dropout_ref.core.drop_family import make_drop_family
from dropout_ref.core.exports import exported_names, lazy_exports
from dropout_ref.core.layer import make_dropout_layer
from dropout_ref.torch.arrays import TorchArrays
from dropout_ref.torch.fast import custom_ops  # noqa: F401  (registers the dropout_ref:: operators)
from dropout_ref.torch.ops import TorchOps

_OPS = TorchOps()
dropout_layer = make_dropout_layer(_OPS)
# DropPath and DropHead (SPEC V1, V2): structured dropout_layer calls.
drop_path, drop_head = make_drop_family(_OPS, dropout_layer)
BACKEND = Backend("torch", _OPS, TorchArrays(), dropout_layer)

# The course's models and portable_masks resolve on first use (no import circle).
__getattr__ = lazy_exports(__name__)

__all__ = ["BACKEND", "dropout_layer", "drop_path", "drop_head", *exported_names("torch")]
