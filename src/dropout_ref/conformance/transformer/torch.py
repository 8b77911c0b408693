"""Probe PyTorch Transformer layers for their dropout sites (see the package docstring).

A ``TorchDispatchMode`` sees every ATen operator the layer runs in training
mode. A dropout shows up as ``bernoulli_`` filling a mask of keep probability
``1 - p`` (``torch.nn.functional.dropout`` and the math kernel of
``scaled_dot_product_attention``), or as a fused attention kernel called with
``dropout_p > 0``. Its site follows from the data flow, tracked by tensor
identity: the operator that produced the dropped tensor (a softmax: attention
probabilities; an activation: the FFN's hidden layer; a matrix product: a
sub-layer's output projection; an embedding lookup: the embeddings) and the
most recent softmax or activation before it (which sub-layer an output
projection belongs to). Cross-attention is told from self-attention by its
probabilities' shape: the probe's memory is longer than its target.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from dropout_ref.conformance.transformer import LayerAudit, Recorder

#: Probe sizes: batch, target length, memory length (differs: tells cross-attention), width.
BATCH, TARGET, MEMORY, WIDTH, HEADS, FFN = 2, 5, 7, 8, 2, 16
RATE = 0.1

_SOFTMAX = ("_softmax", "_safe_softmax", "softmax")
_ACTIVATIONS = ("relu", "gelu", "tanh", "silu")
_PRODUCTS = ("mm", "addmm", "bmm", "matmul", "linear", "baddbmm")
_PASS_THROUGH = (
    "view", "_unsafe_view", "reshape", "transpose", "permute", "t", "clone", "contiguous",
    "expand", "squeeze", "unsqueeze", "alias", "_to_copy", "detach",
)


def _op(func: Any) -> str:
    """``aten.addmm.default`` -> ``addmm``."""
    return str(func).split(".")[1] if str(func).startswith("aten.") else str(func)


class DropoutTracer(TorchDispatchMode):
    """Record the dropouts of the code run under it into a :class:`Recorder`."""

    def __init__(self, recorder: Recorder) -> None:
        super().__init__()
        self.recorder = recorder
        self.producer: dict[int, tuple[str, tuple[int, ...]]] = {}
        self.masks: dict[int, float] = {}
        self.keep: list[Any] = []  # keeps tensors alive, so their ids are not reused
        self.sublayer = "embeddings"

    def _site_of(self, dropped: Any) -> tuple[str, str]:
        op, _ = self.producer.get(id(dropped), ("input", ()))
        shape = tuple(dropped.shape)
        cross = len(shape) == 4 and shape[-1] != shape[-2]
        if op in _SOFTMAX:
            return ("cross-attention probabilities" if cross else "attention probabilities"), op
        if op in _ACTIVATIONS:
            return "FFN hidden activation", op
        if self.sublayer == "embeddings":
            # Before any attention or activation: the embeddings (and BERT's LayerNorm of them).
            return "embeddings", op
        if op in _PRODUCTS or op == "add":
            return self.sublayer, op
        return f"unclassified ({op} -> dropout on {shape})", op

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        op = _op(func)
        out = func(*args, **kwargs)
        tensors = [a for a in tree_leaves((args, kwargs)) if isinstance(a, torch.Tensor)]
        if op in _SOFTMAX:
            shape = tuple(args[0].shape)
            self.sublayer = (
                "cross-attention output" if shape[-1] != shape[-2] else "attention output"
            )
        elif op in _ACTIVATIONS:
            self.sublayer = "FFN output"
        if op == "bernoulli_" and len(args) > 1 and isinstance(args[1], float):
            self.masks[id(args[0])] = 1.0 - args[1]
            self.keep.append(args[0])
        elif op == "mul" and any(id(t) in self.masks for t in tensors):
            mask = next(t for t in tensors if id(t) in self.masks)
            dropped = next((t for t in tensors if t is not mask), None)
            if dropped is not None:
                site, producer = self._site_of(dropped)
                self.recorder.add(
                    site,
                    self.masks[id(mask)],
                    f"aten.bernoulli_ mask of {tuple(mask.shape)} times the output of "
                    f"aten.{producer}",
                )
        elif "scaled_dot_product" in op:
            p = kwargs.get("dropout_p", args[4] if len(args) > 4 else 0.0)
            if isinstance(p, float) and p > 0:
                q, k = args[0], args[1]
                cross = q.shape[-2] != k.shape[-2]
                site = "cross-attention probabilities" if cross else "attention probabilities"
                self.recorder.add(site, p, f"aten.{op}(dropout_p={p:g}) (fused)")
                self.sublayer = site.replace("probabilities", "output")
        # A view or copy passes its input's producer on: the data flow, not the layout, counts.
        source = args[0] if args and isinstance(args[0], torch.Tensor) else None
        inherited = self.producer.get(id(source)) if op in _PASS_THROUGH else None
        for leaf in tree_leaves(out):
            if isinstance(leaf, torch.Tensor):
                self.producer[id(leaf)] = inherited or (op, tuple(leaf.shape))
                self.keep.append(leaf)
        return out


def trace(run: Any) -> Recorder:
    """Run ``run()`` under :class:`DropoutTracer`; return what it recorded."""
    recorder = Recorder()
    with torch.no_grad(), DropoutTracer(recorder):
        run()
    return recorder


def _audit(name: str, module: torch.nn.Module, run: Any, method: str) -> LayerAudit:
    module.train()
    trained = trace(run)
    module.eval()
    evaluated = trace(run)
    return LayerAudit(
        layer=name,
        framework=f"torch {torch.__version__.split('+')[0]}",
        findings=trained.findings,
        eval_calls=evaluated.calls,
        method=method,
    )


METHOD = "TorchDispatchMode over ATen: bernoulli_ masks and fused dropout_p, data-flow sites"


def layer_audits() -> list[LayerAudit]:
    """Audit torch.nn's Transformer layers and MultiheadAttention."""
    torch.manual_seed(0)
    x, memory = torch.randn(BATCH, TARGET, WIDTH), torch.randn(BATCH, MEMORY, WIDTH)
    audits = []
    for norm_first in (False, True):
        suffix = ", norm_first=True" if norm_first else ""
        encoder = torch.nn.TransformerEncoderLayer(
            WIDTH, HEADS, FFN, dropout=RATE, batch_first=True, norm_first=norm_first
        )
        audits.append(_audit(
            f"nn.TransformerEncoderLayer(dropout={RATE}{suffix})", encoder,
            lambda m=encoder: m(x), METHOD,
        ))  # fmt: skip
        decoder = torch.nn.TransformerDecoderLayer(
            WIDTH, HEADS, FFN, dropout=RATE, batch_first=True, norm_first=norm_first
        )
        audits.append(_audit(
            f"nn.TransformerDecoderLayer(dropout={RATE}{suffix})", decoder,
            lambda m=decoder: m(x, memory), METHOD,
        ))  # fmt: skip
    attention = torch.nn.MultiheadAttention(WIDTH, HEADS, dropout=RATE, batch_first=True)
    audits.append(_audit(
        f"nn.MultiheadAttention(dropout={RATE})", attention,
        lambda: attention(x, x, x, need_weights=False), METHOD,
    ))  # fmt: skip
    return audits


def hf_audits() -> list[LayerAudit]:
    """Audit Hugging Face's GPT-2 and BERT (tiny random configs, no download), if installed."""
    try:
        import transformers
    except ImportError:
        return []
    version = transformers.__version__
    idx = torch.randint(0, 50, (BATCH, TARGET), generator=torch.Generator().manual_seed(0))
    audits = []
    gpt2 = transformers.GPT2LMHeadModel(transformers.GPT2Config(
        vocab_size=50, n_positions=16, n_embd=WIDTH, n_layer=1, n_head=HEADS,
        bos_token_id=None, eos_token_id=None,
    ))  # fmt: skip
    bert = transformers.BertModel(transformers.BertConfig(
        vocab_size=50, hidden_size=WIDTH, num_hidden_layers=1, num_attention_heads=HEADS,
        intermediate_size=FFN, max_position_embeddings=16,
    ))  # fmt: skip
    for name, model in (("GPT2LMHeadModel(GPT2Config())", gpt2), ("BertModel(BertConfig())", bert)):
        for impl in ("eager", "sdpa"):
            model.config._attn_implementation = impl
            audit = _audit(
                f"transformers {name}, attn_implementation={impl!r}", model,
                lambda m=model: m(idx), METHOD,
            )  # fmt: skip
            audit.framework = f"transformers {version} on torch {torch.__version__.split('+')[0]}"
            audits.append(audit)
    return audits


def audits() -> list[LayerAudit]:
    """Every torch probe: torch.nn's layers, then Hugging Face's models where installed."""
    return layer_audits() + hf_audits()
