"""Portable top-k generation (SPEC X6): the neutral sampler and loop on a NumPy stand-in model."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from dropout_ref.core.philox import numpy_words
from dropout_ref.models.generate import generate, sample_next, sampling_uniforms
from dropout_ref.numpy import dropout_layer


class Bigram:
    """A stand-in GPT: next-token logits depend on the last token only."""

    def __init__(self, vocab_size: int = 7, block_size: int = 4, seed: int = 0) -> None:
        self.config = SimpleNamespace(vocab_size=vocab_size, block_size=block_size)
        self.table = np.random.default_rng(seed).normal(size=(vocab_size, vocab_size))
        self.calls: list[tuple[tuple[int, ...], bool, object]] = []

    def forward(self, model, idx, *, training, mask_seed):
        assert model is self
        self.calls.append((idx.shape, training, mask_seed))
        return self.table[idx].astype(np.float32)


def test_x6_uniforms_are_the_p3_stream_at_offset_0():
    u = sampling_uniforms(5, 3, 11)
    assert u.shape == (3, 11) and u.dtype == np.float64 and (0 <= u).all() and (u < 1).all()
    np.testing.assert_array_equal(u, numpy_words((3, 11), 5, 0) / 2.0**32)
    # Independent of the word helper: element t is kept by dropout_layer at rate p iff u >= p.
    for p in (0.25, 0.5, 0.9):
        kept = dropout_layer(np.ones((3, 11), np.float32), p, seed=5) != 0
        np.testing.assert_array_equal(kept, u >= p)


def test_x6_top_1_is_greedy_with_ties_to_the_lower_id():
    logits = np.array([[0.0, 3.0, 1.0, 3.0], [5.0, 5.0, 5.0, 5.0], [-1.0, -2.0, -3.0, 0.5]])
    for u in (0.0, 0.5, 1 - 2**-32):
        np.testing.assert_array_equal(sample_next(logits, np.full(3, u), 1.0, 1), [1, 0, 3])


def test_x6_inverse_cdf_in_token_id_order_over_the_kept_tokens():
    logits = np.log(np.array([[0.1, 0.2, 0.3, 0.4]]))
    # All kept: cumulative 0.1, 0.3, 0.6, 1.0.
    for u, token in ((0.0, 0), (0.0999, 0), (0.1001, 1), (0.2999, 1), (0.5, 2), (0.9999, 3)):
        assert sample_next(logits, [u], 1.0, None)[0] == token
    # top_k=2 keeps ids 2 and 3 (0.3 and 0.4): cumulative 3/7, 1.
    for u, token in ((0.0, 2), (0.42, 2), (0.43, 3), (0.99, 3)):
        assert sample_next(logits, [u], 1.0, 2)[0] == token
    # top_k above the vocabulary keeps everything.
    assert sample_next(logits, [0.05], 1.0, 99)[0] == 0
    # Temperature flattens: at T=1e6 the four are nearly equal, u=0.3 picks id 1.
    assert sample_next(logits, [0.3], 1e6, None)[0] == 1


def test_x6_tie_at_the_top_k_boundary_keeps_the_lower_id():
    logits = np.array([[1.0, 2.0, 2.0, 2.0]])
    # top_k=2 of three equal logits: ids 1 and 2, each 1/2.
    assert {int(sample_next(logits, [u], 1.0, 2)[0]) for u in np.linspace(0, 0.999, 50)} == {1, 2}


def test_x6_sample_frequencies_follow_the_softmax():
    logits = np.array([0.0, 1.0, -1.0, 2.0])
    n = 20_000
    u = sampling_uniforms(11, n, 1)[:, 0]
    tokens = sample_next(np.tile(logits, (n, 1)), u, 1.0, None)
    p = np.exp(logits) / np.exp(logits).sum()
    counts = np.bincount(tokens, minlength=4)
    chi2 = float(((counts - n * p) ** 2 / (n * p)).sum())
    # chi-square with 3 degrees of freedom: P(chi2 > 21.1) = 1e-4 (false-alarm probability).
    assert chi2 < 21.1, (counts, n * p)


def test_x6_generation_is_eval_mode_and_deterministic_apart_from_the_seed():
    model = Bigram()
    prompt = np.array([[1, 2], [3, 3]])
    a = generate(model, prompt, 9, top_k=3, seed=4, forward=model.forward)
    b = generate(model, prompt, 9, top_k=3, seed=4, forward=model.forward)
    np.testing.assert_array_equal(a, b)
    assert a.shape == (2, 11) and a.dtype == np.int64
    np.testing.assert_array_equal(a[:, :2], prompt)
    assert all(training is False and mask is None for _, training, mask in model.calls)
    # The context is cropped to block_size = 4.
    assert max(shape[1] for shape, _, _ in model.calls) == 4
    c = generate(model, prompt, 9, top_k=3, seed=5, forward=model.forward)
    assert not np.array_equal(a, c)


def test_x6_one_row_uses_element_t_and_rows_use_row_major_elements():
    model = Bigram(vocab_size=5)
    prompt = np.array([[0], [4]])
    both = generate(model, prompt, 6, seed=9, forward=model.forward)
    u = sampling_uniforms(9, 2, 6)
    ids = prompt.copy()
    for t in range(6):
        token = sample_next(model.table[ids[:, -1]], u[:, t])
        ids = np.concatenate([ids, token[:, None]], axis=1)
    np.testing.assert_array_equal(both, ids)
    alone = generate(model, prompt[:1], 6, seed=9, forward=model.forward)
    np.testing.assert_array_equal(alone[0, 1:], [
        sample_next(model.table[[x]], [w])[0]
        for x, w in zip(alone[0, :-1], sampling_uniforms(9, 1, 6)[0], strict=True)
    ])


def test_x6_mc_dropout_only_when_asked_with_per_step_mask_seeds():
    model = Bigram()
    generate(model, np.array([[0]]), 3, seed=1, mc_dropout=True, mask_seed=2**64 - 2,
             forward=model.forward)
    assert [(training, mask) for _, training, mask in model.calls] == [
        (True, 2**64 - 2), (True, 2**64 - 1), (True, 0)
    ]
    with pytest.raises(ValueError, match="mask_seed is for MC dropout only"):
        generate(model, np.array([[0]]), 3, mask_seed=1, forward=model.forward)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"top_k": 0}, ValueError, "top_k must be None or an integer >= 1, got 0"),
        ({"top_k": 2.0}, TypeError, "top_k"),
        ({"top_k": True}, TypeError, "top_k"),
        ({"temperature": 0.0}, ValueError, "temperature.*top_k=1"),
        ({"temperature": float("nan")}, ValueError, "temperature"),
        ({"seed": -1}, ValueError, "seed"),
        ({"seed": None}, TypeError, "seed"),
        ({"max_new_tokens": -1}, ValueError, "max_new_tokens"),
        ({"idx": np.array([[7]])}, ValueError, "token id 7, outside \\[0, vocab_size=7\\)"),
        ({"idx": np.array([1, 2])}, ValueError, "idx must have shape"),
        ({"idx": np.array([[0.5]])}, TypeError, "integer token ids"),
        ({"mc_dropout": 1}, TypeError, "mc_dropout"),
    ],
)
def test_x6_bad_arguments_are_named(kwargs, error, match):
    model = Bigram()
    arguments = {"idx": np.array([[0]]), "max_new_tokens": 2, **kwargs}
    with pytest.raises(error, match=match):
        generate(model, forward=model.forward, **arguments)


def test_x6_nan_logits_and_non_models_are_refused():
    with pytest.raises(ValueError, match="NaN"):
        sample_next(np.array([[0.0, np.nan]]), [0.5])
    with pytest.raises(TypeError, match="GPT"):
        generate(object(), np.array([[0]]), 1)
