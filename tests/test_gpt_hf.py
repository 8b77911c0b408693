"""The GPT against Hugging Face's ``GPT2LMHeadModel`` (SPEC X5): same weights, same logits.

``transformers`` is a test-only dependency; nothing is downloaded (a tiny random
config). HF runs in float32 with eager attention and every dropout off.
"""

from __future__ import annotations

import numpy as np
import pytest

import dropout_ref
from dropout_ref.core.registry import get_backend, known_backends
from dropout_ref.models.gpt_config import LM_HEAD_KEY, GPTConfig, weight_shapes
from dropout_ref.porting.gpt_compare import has_gpt

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

TINY = {"vocab_size": 37, "block_size": 8, "n_layer": 2, "n_head": 2, "n_embd": 16}

#: SPEC X5 / issue 15: eval logits equal within this, in float32.
TOLERANCE = 1e-5


def hf_model(seed: int = 0, std: float = 0.2):
    """A tiny GPT2LMHeadModel whose every parameter is drawn N(0, std²) (LayerNorms 1 + ...)."""
    config = transformers.GPT2Config(
        vocab_size=TINY["vocab_size"],
        n_positions=TINY["block_size"],
        n_embd=TINY["n_embd"],
        n_layer=TINY["n_layer"],
        n_head=TINY["n_head"],
        activation_function="gelu_new",
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        bos_token_id=0,
        eos_token_id=0,
        attn_implementation="eager",
    )
    torch.manual_seed(seed)
    model = transformers.GPT2LMHeadModel(config).float().eval()
    # Far from HF's init (small weights, LayerNorm exactly 1, zero biases) so errors show.
    with torch.no_grad():
        for name, param in model.named_parameters():
            param.normal_(0.0, std)
            if ".ln_" in name and name.endswith(".weight"):
                param.add_(1.0)
    return model


def hf_logits(model, idx: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model(torch.as_tensor(idx)).logits.numpy()


def tokens(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, TINY["vocab_size"], size=(3, TINY["block_size"]))


@pytest.fixture(params=[name for name in known_backends() if has_gpt(name)])
def gpt_backend(request):
    try:
        return get_backend(request.param).module
    except ImportError as exc:
        pytest.skip(str(exc))


def test_x5_hf_state_dict_loads_as_is_and_gives_the_same_eval_logits(gpt_backend):
    hf = hf_model()
    state = hf.state_dict()  # torch tensors, lm_head.weight included: as is
    assert LM_HEAD_KEY in state
    model = gpt_backend.GPT(GPTConfig(**TINY), weights=state)
    idx = tokens()
    ours = dropout_ref.forward_numpy(model, idx, training=False)
    ref = hf_logits(hf, idx)
    assert ours.dtype == np.float32 and ours.shape == ref.shape
    assert np.abs(ours - ref).max() <= TOLERANCE
    # And back: get_weights is HF's state dict (less the tied head), bit for bit.
    out = model.get_weights()
    assert list(out) == [k for k in state if k != LM_HEAD_KEY]
    for name, value in out.items():
        np.testing.assert_array_equal(value, state[name].numpy(), err_msg=name)


def test_x5_our_weights_load_into_hf_strictly(gpt_backend):
    cfg = GPTConfig(**TINY, dropout="gpt2-hf")
    model = gpt_backend.GPT(cfg)  # GPT-2's init, drawn by us
    weights = model.get_weights()
    hf = hf_model(seed=1)
    tensors = {name: torch.from_numpy(value) for name, value in weights.items()}
    tensors[LM_HEAD_KEY] = tensors["transformer.wte.weight"]
    hf.load_state_dict(tensors, strict=True)
    idx = tokens(1)
    ours = dropout_ref.forward_numpy(model, idx, training=False)
    assert np.abs(ours - hf_logits(hf, idx)).max() <= TOLERANCE


def test_x5_hf_names_are_ours():
    hf = hf_model()
    shapes = {k: tuple(v.shape) for k, v in hf.state_dict().items() if k != LM_HEAD_KEY}
    assert shapes == weight_shapes(GPTConfig(**TINY))
