"""The GPT's cross-framework figures of issue 15 (SPEC X4, X5), measured on this machine.

Usage: ``PYTHONPATH=src python benchmarks/gpt_equivalence.py [--device cuda]`` from the
repository root. Prints, for every installed backend that has a GPT:

- eval logits against ``transformers``' ``GPT2LMHeadModel`` (same weights, float32, eager
  attention, dropout off): max |diff|;
- train-mode logits with ``mask_seed`` against the NumPy oracle: max |diff| / max |oracle|;
- gradients of the train-mode loss (same masks) against the first backend with a
  training step: max over tensors of max |diff| / max |reference gradient|.

Config: vocab 37, block 8, 2 layers, 2 heads, n_embd 16, weights N(0, 0.2²) (LayerNorm
weights 1 + N(0, 0.2²)), dropout 0.1 / 0.2 / 0.3 on embd / attn / resid in train mode.
``--device cuda`` runs the torch model on the GPU (the others stay on their default device).
"""

from __future__ import annotations

import argparse

import numpy as np

import dropout_ref
from dropout_ref.core.registry import available_backends, get_backend
from dropout_ref.models.gpt_config import GPTConfig
from dropout_ref.porting.gpt_compare import has_gpt, training_module

SIZES = {"vocab_size": 37, "block_size": 8, "n_layer": 2, "n_head": 2, "n_embd": 16}
RATES = {"embd": 0.1, "attn": 0.2, "resid": 0.3}
MASK_SEED = 2**40 + 7


def hf_reference(idx: np.ndarray):
    """Return (state dict as NumPy, eval logits) of a tiny random GPT2LMHeadModel, or None."""
    try:
        import torch
        import transformers
    except ImportError:
        return None
    config = transformers.GPT2Config(
        vocab_size=SIZES["vocab_size"], n_positions=SIZES["block_size"],
        n_embd=SIZES["n_embd"], n_layer=SIZES["n_layer"], n_head=SIZES["n_head"],
        activation_function="gelu_new", resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
        bos_token_id=0, eos_token_id=0, attn_implementation="eager",
    )
    torch.manual_seed(0)
    model = transformers.GPT2LMHeadModel(config).float().eval()
    with torch.no_grad():
        for name, param in model.named_parameters():
            param.normal_(0.0, 0.2)
            if ".ln_" in name and name.endswith(".weight"):
                param.add_(1.0)
        logits = model(torch.as_tensor(idx)).logits.numpy()
    return {k: v.numpy().copy() for k, v in model.state_dict().items()}, logits


def main() -> None:
    """Print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="torch device (default cpu)")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    idx = rng.integers(0, SIZES["vocab_size"], size=(3, SIZES["block_size"]))
    targets = rng.integers(0, SIZES["vocab_size"], size=idx.shape)
    reference = hf_reference(idx)
    if reference is None:
        print("transformers not installed: no eval comparison")
        rng_w = np.random.default_rng(1)
        from dropout_ref.models.gpt_config import weight_shapes

        weights = {
            k: (rng_w.normal(0, 0.2, s) + (1.0 if ".ln_" in k and k.endswith("weight") else 0))
            .astype(np.float32)
            for k, s in weight_shapes(GPTConfig(**SIZES)).items()
        }
    else:
        weights, hf_logits = reference
    cfg = GPTConfig(**SIZES, dropout=RATES)
    oracle = get_backend("numpy").GPT(cfg, weights=weights)
    train_ref = oracle(idx, training=True, mask_seed=MASK_SEED)
    grads_ref = None
    print(f"{'backend':<12}{'eval vs HF':>14}{'train rel':>14}{'grad rel':>14}")
    for name in available_backends():
        if not has_gpt(name):
            print(f"{name:<12}  (no GPT)")
            continue
        backend = get_backend(name)
        model = backend.GPT(cfg, weights=weights)
        if name == "torch" and args.device != "cpu":
            model = model.to(args.device)
        eval_diff = "-"
        if reference is not None:
            out = dropout_ref.forward_numpy(model, idx, training=False)
            eval_diff = f"{np.abs(out - hf_logits).max():.2e}"
        train = dropout_ref.forward_numpy(model, idx, training=True, mask_seed=MASK_SEED)
        train_diff = np.abs(train - train_ref).max() / np.abs(train_ref).max()
        grad_diff = "-"
        tools = training_module(name)
        if tools is not None:
            _, grads = tools.gpt_loss_and_gradients(model, idx, targets, mask_seed=MASK_SEED)
            if grads_ref is None:
                grads_ref, grad_diff = (name, grads), "(reference)"
            else:
                worst = max(
                    np.abs(g - grads_ref[1][k]).max() / np.abs(grads_ref[1][k]).max()
                    for k, g in grads.items()
                )
                grad_diff = f"{worst:.2e}"
        print(f"{name:<12}{eval_diff:>14}{train_diff:>14.2e}{grad_diff:>14}")
    if grads_ref is not None:
        print(f"gradients relative to {grads_ref[0]}")


if __name__ == "__main__":
    main()
