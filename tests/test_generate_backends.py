"""Portable generation across backends (SPEC X6) and ``dropout-ref generate``."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from dropout_ref.cli.main import main
from dropout_ref.core.registry import get_backend
from dropout_ref.course.checkpoint import save_checkpoint
from dropout_ref.models.backends import GPT_MODULE
from dropout_ref.models.generate import generate
from dropout_ref.models.gpt_config import GPTConfig, init_weights

CONFIG = GPTConfig(vocab_size=17, block_size=8, n_layer=2, n_head=2, n_embd=16, dropout=0.5)
CHARS = "abcdefghijklmnopq"


def _weights():
    # Wider than GPT-2's init: peaked next-token distributions, so top-k matters.
    weights = init_weights(CONFIG, 0)
    weights["transformer.wte.weight"] *= 8
    return weights


def _model(backend):
    if importlib.util.find_spec(backend) is None:
        pytest.skip(f"{backend} is not installed")
    try:
        adapter = get_backend(backend)
    except ImportError as exc:
        pytest.skip(str(exc))
    if not hasattr(adapter, "GPT"):
        pytest.skip(f"the {backend} GPT is not merged here")
    return adapter, adapter.GPT(CONFIG, weights=_weights())


PROMPT = np.array([[1, 2, 3], [16, 0, 5]])


@pytest.fixture(scope="module")
def reference():
    adapter, model = _model("numpy")
    return {
        (top_k, seed): adapter.generate(model, PROMPT, 12, top_k=top_k, seed=seed)
        for top_k in (None, 1, 4)
        for seed in (0, 7)
    }


@pytest.mark.parametrize("backend", [b for b in GPT_MODULE.backends if b != "numpy"])
def test_x6_same_seed_same_tokens_in_every_backend(backend, reference):
    adapter, model = _model(backend)
    for (top_k, seed), expected in reference.items():
        got = adapter.generate(model, PROMPT, 12, top_k=top_k, seed=seed)
        np.testing.assert_array_equal(got, expected, err_msg=f"top_k={top_k}, seed={seed}")


def test_x6_seeds_and_top_k_change_the_text(reference):
    assert not np.array_equal(reference[(None, 0)], reference[(None, 7)])
    # Greedy ignores the seed.
    np.testing.assert_array_equal(reference[(1, 0)], reference[(1, 7)])


@pytest.mark.parametrize("backend", ["numpy", "torch", "tensorflow"])
def test_x6_eval_mode_is_deterministic_and_mc_dropout_only_when_asked(backend):
    adapter, model = _model(backend)
    from dropout_ref import forward_numpy

    first = adapter.generate(model, PROMPT, 10, seed=3)
    np.testing.assert_array_equal(first, adapter.generate(model, PROMPT, 10, seed=3))
    # The framework's own tensor as the prompt gives the same tokens.
    tensor = adapter.arrays.from_numpy(PROMPT)
    np.testing.assert_array_equal(adapter.generate(model, tensor, 10, seed=3), first)
    # Dropout 0.5 at every site would change the logits in training mode: they are off.
    eval_logits = forward_numpy(model, PROMPT, training=False)
    train_logits = forward_numpy(model, PROMPT, training=True, mask_seed=1)
    assert not np.allclose(eval_logits, train_logits)
    a = adapter.generate(model, PROMPT, 10, seed=3, mc_dropout=True, mask_seed=11)
    b = adapter.generate(model, PROMPT, 10, seed=3, mc_dropout=True, mask_seed=11)
    np.testing.assert_array_equal(a, b)


def test_x6_mc_dropout_with_portable_masks_agrees_across_backends():
    runs = {}
    for backend in ("numpy", "torch", "tensorflow"):
        if importlib.util.find_spec(backend) is None:
            continue
        _, model = _model(backend)
        runs[backend] = generate(model, PROMPT, 10, seed=3, mc_dropout=True, mask_seed=11)
    for backend, tokens in runs.items():
        np.testing.assert_array_equal(tokens, runs["numpy"], err_msg=backend)


@pytest.fixture
def checkpoint(tmp_path):
    save_checkpoint(tmp_path, CONFIG, _weights(), {"chars": CHARS})
    return tmp_path


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_x6_generate_command_prints_the_same_text_in_every_backend(backend, checkpoint, capsys):
    if importlib.util.find_spec(backend) is None:
        pytest.skip(f"{backend} is not installed")
    argv = ["generate", "--checkpoint", str(checkpoint), "--prompt", "abc",
            "--max-new-tokens", "12", "--top-k", "4", "--seed", "5"]
    assert main([*argv, "--backend", "numpy"]) == 0
    expected = capsys.readouterr().out
    assert main([*argv, "--backend", backend]) == 0
    out = capsys.readouterr().out
    assert out == expected and out.startswith("abc") and len(out) == 3 + 12 + 1
    assert set(out.strip()) <= set(CHARS)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--top-k", "0"], "top_k must be None or an integer >= 1, got 0"),
        (["--prompt", "ab!"], "--prompt: character '!' is not in the vocabulary"),
        (["--temperature", "0"], "temperature"),
        (["--mask-seed", "3"], "mask_seed is for MC dropout only"),
    ],
)
def test_generate_command_bad_input_exits_2_in_one_line(extra, message, checkpoint, capsys):
    argv = ["generate", "--backend", "numpy", "--checkpoint", str(checkpoint), "--prompt", "ab",
            *extra]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err


def test_generate_command_refuses_a_folder_without_a_checkpoint(tmp_path, capsys):
    assert main(["generate", "--backend", "numpy", "--checkpoint", str(tmp_path)]) == 2
    assert "config.json does not exist" in capsys.readouterr().err
