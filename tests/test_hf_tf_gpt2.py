"""SPEC P8 across frameworks: Hugging Face's PyTorch and TensorFlow (tf_keras) GPT-2, unmodified.

One tiny random config and one checkpoint: ``GPT2LMHeadModel`` and
``TFGPT2LMHeadModel.from_pretrained(dir, from_pt=True)``, in training mode, each inside
its framework's ``portable_masks`` with the same seed, number the same 7 sites and
drop the same elements: equal logits and loss gradients, equal to our GPT's
(``dropout_ref.torch.GPT`` with the HF weights and ``mask_seed``). Also BERT
(``BertModel`` vs ``TFBertModel``). The masks are Philox with a fixed seed: the checks
are deterministic (false-alarm probability 0).
"""

from __future__ import annotations

import numpy as np
import pytest

SEED = 5
VOCAB, N_LAYER = 64, 2


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    pytest.importorskip("tf_keras")
    pytest.importorskip("tensorflow")
    if not hasattr(transformers, "TFGPT2LMHeadModel"):
        pytest.skip("this transformers has no TensorFlow classes")
    config = transformers.GPT2Config(
        vocab_size=VOCAB, n_positions=16, n_embd=32, n_layer=N_LAYER, n_head=4,
        resid_pdrop=0.1, embd_pdrop=0.1, attn_pdrop=0.1, attn_implementation="eager",
        bos_token_id=0, eos_token_id=0,
    )
    torch.manual_seed(0)
    directory = tmp_path_factory.mktemp("gpt2")
    transformers.GPT2LMHeadModel(config).float().save_pretrained(directory)
    return directory


def _tokens() -> np.ndarray:
    return np.random.default_rng(1).integers(0, VOCAB, (2, 10))


def _torch_name(tf_name: str) -> str:
    """``tfgpt2lm_head_model/transformer/h_._0/ln_1/gamma:0`` -> ``transformer.h.0.ln_1.weight``."""
    path = tf_name.split(":")[0].split("/", 1)[1].replace("h_._", "h.").replace("/", ".")
    for tf_part, torch_part in ((".gamma", ".weight"), (".beta", ".bias"),
                                (".embeddings", ".weight")):
        if path.endswith(tf_part):
            path = path[: -len(tf_part)] + torch_part
    return path


def test_p8_hf_gpt2_torch_and_tf_keras_drop_the_same_elements(checkpoint):
    """P8: HF's torch and TF GPT-2, unmodified, train mode: 7 sites, same logits and gradients."""
    import tensorflow as tf
    import torch
    import transformers

    from dropout_ref import tensorflow as tf_backend
    from dropout_ref import torch as torch_backend
    from dropout_ref.models.gpt_config import GPTConfig

    pt = transformers.GPT2LMHeadModel.from_pretrained(checkpoint).float().train()
    tfm = transformers.TFGPT2LMHeadModel.from_pretrained(checkpoint, from_pt=True)
    idx = _tokens()
    weights_of_output = np.linspace(-1, 1, VOCAB).astype("float32")

    with torch_backend.portable_masks(SEED) as pt_ctx:
        pt_logits = pt(torch.tensor(idx)).logits
    (pt_logits * torch.tensor(weights_of_output)).sum().backward()
    with tf_backend.portable_masks(SEED) as tf_ctx:
        with tf.GradientTape() as tape:
            tf_logits = tfm(tf.constant(idx), training=True).logits
            loss = tf.reduce_sum(tf_logits * weights_of_output)
    grads = tape.gradient(loss, tfm.trainable_variables)

    # Sites: embedding, then (attention probabilities, attention residual, MLP residual)
    # per block: 1 + 3 * n_layer, with the same shapes and rates in both frameworks.
    assert pt_ctx.count == tf_ctx.count == 1 + 3 * N_LAYER
    assert [s.shape for s in pt_ctx.sites] == [s.shape for s in tf_ctx.sites]
    assert [s.rate for s in pt_ctx.sites] == pytest.approx([s.rate for s in tf_ctx.sites])
    assert {s.source for s in tf_ctx.sites} == {"tf_keras.layers.Dropout"}

    pt_np, tf_np = pt_logits.detach().numpy(), tf_logits.numpy()
    scale = float(np.abs(pt_np).max())
    assert np.abs(pt_np - tf_np).max() <= 1e-5 * scale

    config = GPTConfig(vocab_size=VOCAB, block_size=16, n_layer=N_LAYER, n_head=4, n_embd=32,
                       dropout="gpt2-hf")
    state = {k: v.detach().numpy().copy() for k, v in pt.state_dict().items()}
    ours = torch_backend.GPT(config, weights=state).train()
    our_logits = ours(torch.tensor(idx), mask_seed=SEED).detach().numpy()
    assert np.abs(tf_np - our_logits).max() <= 1e-5 * scale

    # Without the masks the logits differ: the comparison above is about the masks.
    eval_logits = tfm(tf.constant(idx), training=False).logits.numpy()
    assert np.abs(eval_logits - tf_np).max() > 1e-3 * scale

    torch_params = dict(pt.named_parameters())
    compared = 0
    for variable, grad in zip(tfm.trainable_variables, grads, strict=True):
        name = _torch_name(variable.name)
        ref = torch_params[name].grad.numpy().reshape(grad.shape)
        got = tf.convert_to_tensor(grad).numpy()  # wte's gradient is an IndexedSlices sum
        assert np.abs(got - ref).max() <= 1e-4 * max(float(np.abs(ref).max()), 1e-30), name
        compared += 1
    assert compared == len(torch_params)


def test_p8_hf_tf_gpt2_eval_takes_no_number(checkpoint):
    """P8: TFGPT2LMHeadModel in inference mode (training=False) numbers no site."""
    import tensorflow as tf
    import transformers

    from dropout_ref import tensorflow as tf_backend

    tfm = transformers.TFGPT2LMHeadModel.from_pretrained(checkpoint, from_pt=True)
    with tf_backend.portable_masks(SEED) as ctx:
        tfm(tf.constant(_tokens()), training=False)
    assert ctx.count == 0


# --- BERT: TFBertModel vs BertModel -----------------------------------------------------------


def _bert_torch_name(tf_name: str) -> tuple[str, bool]:
    """``tf_bert_model/bert/encoder/layer_._0/.../kernel:0`` -> torch name, transposed?"""
    path = tf_name.split(":")[0].split("/", 2)[2].replace("layer_._", "layer.").replace("/", ".")
    for tf_part, torch_part in ((".kernel", ".weight"), (".gamma", ".weight"),
                                (".beta", ".bias"), (".embeddings", ".weight")):
        if path.endswith(tf_part):
            return path[: -len(tf_part)] + torch_part, tf_part == ".kernel"
    return path, False


def test_p8_hf_bert_torch_and_tf_keras_drop_the_same_elements(tmp_path):
    """P8: HF's BertModel and TFBertModel, unmodified, train mode: same sites, outputs, grads."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    pytest.importorskip("tf_keras")
    tf = pytest.importorskip("tensorflow")
    if not hasattr(transformers, "TFBertModel"):
        pytest.skip("this transformers has no TensorFlow classes")
    from dropout_ref import tensorflow as tf_backend
    from dropout_ref import torch as torch_backend

    config = transformers.BertConfig(
        vocab_size=VOCAB, hidden_size=32, num_hidden_layers=N_LAYER, num_attention_heads=4,
        intermediate_size=64, max_position_embeddings=16, attn_implementation="eager",
    )
    torch.manual_seed(0)
    transformers.BertModel(config).float().save_pretrained(tmp_path)
    pt = transformers.BertModel.from_pretrained(tmp_path, attn_implementation="eager").train()
    tfm = transformers.TFBertModel.from_pretrained(tmp_path, from_pt=True)
    idx = _tokens()
    out_weights = np.random.default_rng(2).normal(size=(32,)).astype("float32")

    with torch_backend.portable_masks(SEED) as pt_ctx:
        pt_out = pt(torch.tensor(idx)).last_hidden_state
    (pt_out * torch.tensor(out_weights)).sum().backward()
    with tf_backend.portable_masks(SEED) as tf_ctx:
        with tf.GradientTape() as tape:
            tf_out = tfm(tf.constant(idx), training=True).last_hidden_state
            loss = tf.reduce_sum(tf_out * out_weights)
    grads = tape.gradient(loss, tfm.trainable_variables)

    # embeddings; (attention probabilities, attention output, FFN output) per layer
    assert pt_ctx.count == tf_ctx.count == 1 + 3 * N_LAYER
    assert [s.shape for s in pt_ctx.sites] == [s.shape for s in tf_ctx.sites]
    pt_np, tf_np = pt_out.detach().numpy(), tf_out.numpy()
    scale = float(np.abs(pt_np).max())
    assert np.abs(pt_np - tf_np).max() <= 1e-5 * scale
    eval_out = tfm(tf.constant(idx), training=False).last_hidden_state.numpy()
    assert np.abs(eval_out - tf_np).max() > 1e-3 * scale  # the masks matter

    torch_params = dict(pt.named_parameters())
    # The key bias' gradient is 0 in exact arithmetic (softmax ignores a shift along the
    # keys): both frameworks compute rounding noise there, so each parameter is compared
    # on the scale max(its own gradient, 1e-3 * the largest gradient of the model).
    floor = 1e-3 * max(float(p.grad.abs().max()) for p in torch_params.values()
                       if p.grad is not None)
    compared = 0
    for variable, grad in zip(tfm.trainable_variables, grads, strict=True):
        name, transposed = _bert_torch_name(variable.name)
        ref_grad = torch_params[name].grad
        if grad is None or ref_grad is None:  # the pooler: not in the loss in either
            assert grad is None and ref_grad is None, name
            continue
        ref = ref_grad.numpy().T if transposed else ref_grad.numpy()
        got = tf.convert_to_tensor(grad).numpy()
        assert np.abs(got - ref).max() <= 1e-4 * max(float(np.abs(ref).max()), floor), name
        compared += 1
    assert compared >= len(torch_params) - 2  # all but the pooler's weight and bias
