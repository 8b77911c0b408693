"""SPEC S3: dropout schedules, against the reference definitions of Liu et al. 2023."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dropout_ref import schedules


def test_s3_constant_is_p_everywhere():
    s = schedules.constant(0.3)
    assert [s(i) for i in (0, 1, 10, 10**6)] == [0.3] * 4


@pytest.mark.parametrize("until", [1, 2, 7, 100])
def test_s3_early_constant_matches_reference(until):
    s = schedules.early(0.25, until, mode="constant")
    steps = np.arange(until + 5)
    reference = np.where(steps < until, 0.25, 0.0)
    assert [s(int(i)) for i in steps] == reference.tolist()


@pytest.mark.parametrize("until", [1, 2, 7, 100])
def test_s3_early_linear_is_linspace_then_zero(until):
    s = schedules.early(0.1, until, mode="linear")
    reference = np.concatenate([np.linspace(0.1, 0.0, until), np.zeros(5)])
    got = [s(i) for i in range(until + 5)]
    assert got == reference.tolist()  # exactly: the same float64 values
    assert got[0] == 0.1 and got[until - 1] == (0.0 if until > 1 else 0.1)


@pytest.mark.parametrize("start", [0, 1, 50])
def test_s3_late_is_zero_before_start(start):
    s = schedules.late(0.4, start)
    got = [s(i) for i in range(start + 4)]
    assert got == [0.0] * start + [0.4] * 4


def test_s3_early_zero_steps_never_drops():
    assert schedules.early(0.5, 0)(0) == 0.0


@pytest.mark.parametrize(
    ("call", "error", "text"),
    [
        (lambda: schedules.constant(1.5), ValueError, "p must satisfy"),
        (lambda: schedules.constant(math.nan), ValueError, "nan"),
        (lambda: schedules.constant(True), TypeError, "True"),
        (lambda: schedules.early(0.1, -1), ValueError, "until must be >= 0, got -1"),
        (lambda: schedules.early(0.1, 2.5), TypeError, "until"),
        (lambda: schedules.early(0.1, 10, mode="cosine"), ValueError, "'cosine'"),
        (lambda: schedules.late(-0.1, 3), ValueError, "-0.1"),
        (lambda: schedules.late(0.1, "3"), TypeError, "start"),
        (lambda: schedules.constant(0.1)(-1), ValueError, "step must be >= 0"),
    ],
)
def test_s3_bad_arguments_name_the_argument_and_value(call, error, text):
    with pytest.raises(error, match=text):
        call()


def test_s3_callable_and_per_site_schedules():
    per_site = schedules.as_site_schedules(
        {"dropout1": schedules.early(0.2, 2), "dropout2": lambda step: 0.5 / (1 + step)},
        ("dropout1", "dropout2"),
    )
    assert schedules.rates_at(per_site, 0) == {"dropout1": 0.2, "dropout2": 0.5}
    assert schedules.rates_at(per_site, 3) == {"dropout1": 0.0, "dropout2": 0.125}
    every = schedules.as_site_schedules(0.3, ("a", "b"))
    assert schedules.rates_at(every, 9) == {"a": 0.3, "b": 0.3}
    with pytest.raises(ValueError, match="missing \\['b'\\]"):
        schedules.as_site_schedules({"a": 0.1}, ("a", "b"))
    with pytest.raises(ValueError, match=r"schedule\['a'\]\(4\)"):
        schedules.rates_at({"a": lambda step: 2.0}, 4)
    with pytest.raises(TypeError, match="callable"):
        schedules.as_site_schedules("fast", ("a",))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("constant:0.3", schedules.constant(0.3)),
        ("early:linear:50", schedules.early(0.2, 50, "linear")),
        ("early:constant:50:0.1", schedules.early(0.1, 50, "constant")),
        ("late:10", schedules.late(0.2, 10)),
    ],
)
def test_s3_cli_spelling(text, expected):
    parsed = schedules.parse(text, p=0.2)
    assert parsed == expected
    assert schedules.parse(parsed.describe(), p=parsed.p) == parsed


@pytest.mark.parametrize("text", ["early:50", "early:cosine:5", "late:x", "slow:1", "constant"])
def test_s3_cli_spelling_refuses_unknown_forms(text):
    with pytest.raises(ValueError, match="dropout-schedule"):
        schedules.parse(text, p=0.2)


def test_s3_early_dropout_example_runs(tmp_path):
    """examples/early_dropout.py end to end on a few epochs (numpy backend, offline data)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "examples" / "early_dropout.py"
    spec = importlib.util.spec_from_file_location("early_dropout", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "early.png"
    results = module.main(["--epochs", "2", "--seeds", "1", "--until", "10", "--out", str(out)])
    assert out.stat().st_size > 0 and out.with_suffix(".json").exists()
    assert set(results) == {"no dropout", "constant p=0.1", "early p=0.1 until step 10"}
    assert all(len(r["train_loss"]) == 2 for r in results.values())


def test_s3_d1_checked_rates_names_the_bad_rate():
    """A step's rates are checked on the host as D1 checks a rate, before they become tensors."""
    from dropout_ref.core.runtime import checked_rates

    assert checked_rates(None) is None
    assert checked_rates([0.5, 1]) == (0.5, 1.0)
    assert checked_rates({"attn": 0.25}) == {"attn": 0.25}
    assert checked_rates((0.5, 0.25), convert=lambda r: -r) == (-0.5, -0.25)
    with pytest.raises(ValueError, match=r"rates\[1\].*1\.5"):
        checked_rates((0.1, 1.5))
    with pytest.raises(ValueError, match=r"rates\['resid'\]"):
        checked_rates({"embd": 0.1, "resid": float("nan")})
    with pytest.raises(TypeError, match=r"rates\[0\]"):
        checked_rates(["0.1"])


@pytest.mark.parametrize("backend", ["torch", "tensorflow", "jax"])
def test_s3_compiled_steps_refuse_a_bad_schedule_rate_on_the_host(backend):
    """The compiled steps take rates and seeds as tensors; a bad one fails first, named (D1)."""
    import importlib

    pytest.importorskip({"torch": "torch", "tensorflow": "tensorflow", "jax": "flax.nnx"}[backend])
    training = importlib.import_module(f"dropout_ref.course.{backend}.training")
    model = importlib.import_module(f"dropout_ref.models.{backend}.mlp").MLP(
        num_inputs=4, num_outputs=2, num_hiddens1=3, num_hiddens2=3, rng=0
    )
    step = training.compiled_sgd_step if backend == "torch" else training.sgd_step
    images, labels = np.ones((2, 4), np.float32), np.zeros(2, np.int64)
    with pytest.raises(ValueError, match=r"rates\[1\]"):
        step(model, images, labels, 0.1, mask_seed=3, rates=(0.2, -0.5))
    # The seed too: a negative one must not travel as an int64 read as its 64 bits (D1).
    with pytest.raises(ValueError, match=r"mask_seed must be in \[0, 2\*\*64\), got -1"):
        step(model, images, labels, 0.1, mask_seed=-1)
    with pytest.raises(TypeError, match="mask_seed"):
        step(model, images, labels, 0.1, mask_seed=1.5)
