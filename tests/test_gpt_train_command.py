"""``dropout-ref train --model gpt`` (issue 15, item 4): files, checkpoint, clear errors."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest

from dropout_ref.cli.main import main
from dropout_ref.course.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from dropout_ref.course.gpt_training import GPTTrainConfig, step_mask_seed
from dropout_ref.models.gpt_config import GPTConfig, init_weights

TINY = [
    "--steps", "4", "--eval-interval", "2", "--eval-batches", "1", "--batch-size", "2",
    "--block-size", "8", "--n-layer", "1", "--n-head", "1", "--n-embd", "8",
]


@pytest.mark.parametrize("backend", ["torch", "tensorflow"])
def test_train_gpt_writes_metrics_curves_and_a_checkpoint(backend, tmp_path, capsys):
    pytest.importorskip(backend)
    out = tmp_path / "run"
    code = main(["train", "--model", "gpt", "--backend", backend, "--no-progress",
                 "--dropout", "bert", "--out", str(out), *TINY])
    assert code == 0, capsys.readouterr().err
    document = json.loads((out / "metrics.json").read_text())
    rows = document["evals"]
    assert [row["step"] for row in rows] == [0, 2, 4]
    assert document["meta"]["train"]["dropout"] == "bert"
    for row in rows:
        assert math.isclose(row["val_bpc"], row["val_loss"] / math.log(2))
    # GPT-2's init predicts nearly uniformly: about log(vocab_size) nats at step 0.
    config, weights, extra = load_checkpoint(out)
    assert abs(rows[0]["train_loss"] - math.log(config.vocab_size)) < 0.1
    with open(out / "metrics.csv") as handle:
        assert len(list(csv.DictReader(handle))) == 3
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert config.dropout == "bert" and config.n_embd == 8 and extra["step"] == 4
    assert len(extra["chars"]) == config.vocab_size
    # The weights moved away from the init.
    start = init_weights(config, 0)
    assert not np.array_equal(weights["transformer.wte.weight"], start["transformer.wte.weight"])


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--model", "gpt", "--backend", "numpy"], "forward oracle"),
        (["--model", "gpt", "--backend", "torch", "--dropout", "bogus"], "unknown preset 'bogus'"),
        (["--model", "gpt", "--backend", "torch", "--dropout", "1.5"], "dropout"),
        (["--model", "gpt", "--backend", "torch", "--n-head", "3"], "divisible by n_head"),
        (["--model", "gpt", "--backend", "torch", "--steps", "0"], "steps"),
        (["--model", "gpt", "--backend", "torch", "--epochs", "2"], "--epochs"),
        (["--backend", "numpy", "--steps", "3"], "--steps is an option of --model gpt"),
        (["--backend", "numpy", "--quick"], "--quick is an option of --model gpt"),
    ],
)
def test_train_gpt_bad_options_exit_2_in_one_line(argv, message, tmp_path, capsys):
    assert main(["train", "--no-progress", "--out", str(tmp_path / "o"), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err
    assert not (tmp_path / "o").exists()


def test_train_config_checks_and_mask_seeds():
    with pytest.raises(ValueError, match="train_tokens"):
        GPTTrainConfig(block_size=8, train_tokens=8)
    with pytest.raises(TypeError, match="lr"):
        GPTTrainConfig(lr="0.1")
    with pytest.raises(ValueError, match="beta2"):
        GPTTrainConfig(beta2=1.0)
    seeds = {step_mask_seed(s, k) for s in (0, 1) for k in (1, 2, 2**32 - 1)}
    assert len(seeds) == 6 and max(seeds) < 2**64


def test_checkpoint_round_trip_and_errors(tmp_path):
    config = GPTConfig(vocab_size=5, block_size=4, n_layer=1, n_head=1, n_embd=4, dropout=0.1)
    weights = init_weights(config, 3)
    save_checkpoint(tmp_path, config, weights, {"chars": "abcde"})
    loaded, back, extra = load_checkpoint(tmp_path)
    assert loaded == config and extra == {"chars": "abcde"}
    assert all(np.array_equal(back[k], weights[k]) for k in weights)
    with pytest.raises(CheckpointError, match=r"config\.json does not exist"):
        load_checkpoint(tmp_path / "nothing")
    bad = dict(weights)
    bad.pop("transformer.wpe.weight")
    with pytest.raises(ValueError, match=r"transformer\.wpe\.weight"):
        save_checkpoint(tmp_path / "b", config, bad)
    assert not (tmp_path / "b").exists()
    (tmp_path / "weights.npz").write_bytes(b"not a zip")
    with pytest.raises(CheckpointError, match=r"weights\.npz is not a weights archive"):
        load_checkpoint(tmp_path)
