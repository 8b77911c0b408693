"""Hugging Face's GPT-2 in torch and in Flax, unmodified, under ``portable_masks`` (SPEC P8, X4).

Both models come from one tiny random config saved to disk (the Flax one
converted with ``from_pt=True``), run in training mode inside their framework's
``portable_masks`` with the same seed. Flax's GPT-2 imports
``dot_product_attention_weights`` by name; its attention dropout is Flax's
default ``broadcast_dropout=True`` (one decision per (query, key) pair shared
over batch and heads), torch's is element-wise: the sites record that
difference, and only with element-wise attention dropout do the two agree.
Everything compared is deterministic (same seed, same counters); tolerances
absorb float32 reassociation only, so there is no false-alarm probability.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest

transformers = pytest.importorskip("transformers")
torch = pytest.importorskip("torch")
jax = pytest.importorskip("jax")
jnp = pytest.importorskip("jax.numpy")
pytest.importorskip("flax")
modeling_flax_gpt2 = pytest.importorskip("transformers.models.gpt2.modeling_flax_gpt2")

from flax.linen import attention as linen_attention  # noqa: E402

import dropout_ref.jax  # noqa: E402
import dropout_ref.torch  # noqa: E402
from dropout_ref.models.gpt_config import GPTConfig  # noqa: E402
from dropout_ref.numpy import GPT as NUMPY_GPT  # noqa: E402

SEED = 5
VOCAB, T, BATCH, N_LAYER, N_HEAD = 64, 10, 2, 2, 4


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """(torch model, Flax model, Flax params) from one random config saved to disk."""
    config = transformers.GPT2Config(
        vocab_size=VOCAB, n_positions=16, n_embd=32, n_layer=N_LAYER, n_head=N_HEAD,
        resid_pdrop=0.1, embd_pdrop=0.1, attn_pdrop=0.1, attn_implementation="eager",
        bos_token_id=0, eos_token_id=0,
    )
    torch.manual_seed(0)
    pt = transformers.GPT2LMHeadModel(config).float()
    directory = tmp_path_factory.mktemp("tiny-gpt2")
    pt.save_pretrained(directory)
    flax_model = transformers.FlaxGPT2LMHeadModel.from_pretrained(directory, from_pt=True)
    return pt.train(), flax_model


@pytest.fixture(scope="module")
def idx():
    return np.random.default_rng(1).integers(0, VOCAB, (BATCH, T))


def _loss_torch(logits, idx):
    return torch.nn.functional.cross_entropy(
        logits[:, :-1].reshape(-1, VOCAB), torch.as_tensor(idx[:, 1:]).reshape(-1))


def _loss_jax(logits, idx):
    logp = jax.nn.log_softmax(logits[:, :-1], axis=-1)
    return -jnp.take_along_axis(logp, jnp.asarray(idx[:, 1:])[..., None], axis=-1).mean()


def _torch_run(pt, idx):
    pt.zero_grad()
    with dropout_ref.torch.portable_masks(SEED) as ctx:
        logits = pt(torch.as_tensor(idx)).logits
        _loss_torch(logits, idx).backward()
    grads = {name: p.grad.numpy().copy() for name, p in pt.named_parameters()}
    return logits.detach().numpy(), grads, ctx.sites


def _flax_run(flax_model, idx):
    rng = jax.random.key(7)

    def logits_of(params):
        return flax_model(idx, params=params, dropout_rng=rng, train=True).logits

    with dropout_ref.jax.portable_masks(SEED) as ctx:
        logits = logits_of(flax_model.params)
    with dropout_ref.jax.portable_masks(SEED):
        grads = jax.grad(lambda p: _loss_jax(logits_of(p), idx))(flax_model.params)
    return np.asarray(logits), grads, ctx.sites


def _per_element_attention(*args, **kwargs):
    # Looked up through Flax's module global at each call, so the context's door runs.
    return linen_attention.dot_product_attention_weights(*args, broadcast_dropout=False, **kwargs)


def _flax_grads_in_torch_layout(pt, flax_grads):
    """Flax's gradients, converted to torch's names and layouts by transformers' own loader."""
    holder = transformers.GPT2LMHeadModel(pt.config).float()
    holder = transformers.modeling_flax_pytorch_utils.load_flax_weights_in_pytorch_model(
        holder, jax.tree_util.tree_map(np.asarray, flax_grads))
    return {name: p.detach().numpy() for name, p in holder.named_parameters()}


def _assert_close(got, want, rtol, what):
    scale = max(float(np.abs(want).max()), 1e-30)
    assert float(np.abs(got - want).max()) <= rtol * scale, what


def test_p8_flax_gpt2_default_broadcast_attention_sites_name_the_difference(models, idx):
    pt, flax_model = models
    torch_logits, _, torch_sites = _torch_run(pt, idx)
    flax_logits, _, flax_sites = _flax_run(flax_model, idx)
    assert len(flax_sites) == len(torch_sites) == 1 + 3 * N_LAYER
    attention = [1 + 3 * layer for layer in range(N_LAYER)]
    for j in attention:
        assert flax_sites[j].source == "flax.linen.dot_product_attention_weights"
        assert flax_sites[j].shape == torch_sites[j].shape == (BATCH, N_HEAD, T, T)
        assert torch_sites[j].noise_shape is None
        assert flax_sites[j].noise_shape == (1, 1, T, T)  # what a port check names
    for j in set(range(len(flax_sites))) - set(attention):
        assert flax_sites[j].noise_shape is None and flax_sites[j].shape == torch_sites[j].shape
    scale = float(np.abs(torch_logits).max())
    assert float(np.abs(flax_logits - torch_logits).max()) > 1e-3 * scale


def test_p8_x4_flax_gpt2_per_element_attention_equals_torch_and_our_gpt(
        models, idx, monkeypatch):
    pt, flax_model = models
    monkeypatch.setattr(modeling_flax_gpt2, "dot_product_attention_weights",
                        _per_element_attention)
    torch_logits, torch_grads, torch_sites = _torch_run(pt, idx)
    flax_logits, flax_grads, flax_sites = _flax_run(flax_model, idx)
    assert [(s.shape, s.rate, s.noise_shape) for s in flax_sites] == [
        (s.shape, pytest.approx(s.rate), s.noise_shape) for s in torch_sites]
    scale = float(np.abs(torch_logits).max())
    _assert_close(flax_logits, torch_logits, 1e-5, "logits vs torch")
    weights = {k: v.detach().numpy().copy() for k, v in pt.state_dict().items()}
    config = GPTConfig(vocab_size=VOCAB, block_size=16, n_layer=N_LAYER, n_head=N_HEAD,
                       n_embd=32, dropout="gpt2-hf")
    ours = NUMPY_GPT(config, weights=weights)(idx, training=True, mask_seed=SEED)
    _assert_close(flax_logits, ours, 1e-5, "logits vs our GPT")
    # The masks matter: Flax's eval logits differ from its training logits.
    eval_logits = np.asarray(flax_model(idx, params=flax_model.params, train=False).logits)
    assert float(np.abs(eval_logits - flax_logits).max()) > 1e-3 * scale
    converted = _flax_grads_in_torch_layout(pt, flax_grads)
    assert set(converted) == set(torch_grads)
    for name, want in torch_grads.items():
        _assert_close(converted[name], want, 1e-4, name)


def test_p8_flax_gpt2_never_draws_jax_random_numbers(models, idx, monkeypatch):
    _, flax_model = models

    class RandomDrawnError(RuntimeError):
        pass

    def refuse(*args, **kwargs):
        raise RandomDrawnError("jax.random drew a number")

    for name in ("bernoulli", "uniform", "bits"):
        monkeypatch.setattr(jax.random, name, refuse)
    run = functools.partial(
        flax_model, idx, params=flax_model.params, dropout_rng=jax.random.key(7), train=True)
    with dropout_ref.jax.portable_masks(SEED) as ctx:
        run()
    assert ctx.count == 1 + 3 * N_LAYER
    with pytest.raises(RandomDrawnError):
        run()
