"""SPEC S4: adaptive dropout schedules, their CLI spelling, checkpoints and compiled steps.

Expected values come from independent formulas (``numpy.interp``,
``scipy.signal.sawtooth``) and, for ``on_plateau``, from PyTorch's own
``ReduceLROnPlateau`` driving a learning rate.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from dropout_ref import schedules
from dropout_ref.cli.main import main

STEPS = np.arange(0, 130)


def test_s4_linear_is_interpolation_between_start_and_end():
    """S4 linear: p0 before start, p1 from end, numpy.interp in between."""
    s = schedules.linear(0.1, 0.4, 20, 70)
    want = np.interp(STEPS, [20, 70], [0.1, 0.4])
    np.testing.assert_allclose([s(int(t)) for t in STEPS], want, rtol=1e-12, atol=1e-15)


def test_s4_exponential_has_its_floor():
    """S4 exponential: max(floor, p0 * gamma**t)."""
    s = schedules.exponential(0.5, 0.97, floor=0.1)
    want = np.maximum(0.1, 0.5 * 0.97 ** STEPS.astype(float))
    np.testing.assert_allclose([s(int(t)) for t in STEPS], want, rtol=1e-12)
    assert s(1000) == 0.1


@pytest.mark.parametrize("cycles, total", [(1, 100), (3, 120), (4, 10)])
def test_s4_triangular_cycles_are_scipys_triangle_wave(cycles, total):
    """S4 triangular: ``cycles`` up-then-down triangles over ``total`` steps (scipy's sawtooth)."""
    from scipy.signal import sawtooth

    s = schedules.triangular(0.05, 0.35, cycles, total)
    t = STEPS[STEPS < total]
    wave = sawtooth(2 * np.pi * cycles * t / total, width=0.5)  # -1 at a cycle's start
    want = 0.05 + 0.30 * (wave + 1) / 2
    np.testing.assert_allclose([s(int(i)) for i in t], want, atol=1e-12)
    assert s(total) == s(total + 50) == 0.05


def test_s4_v_shaped_goes_down_to_zero_then_up():
    """S4 v_shaped: p_start -> 0 over warmup, then -> p_end at total (numpy.interp)."""
    s = schedules.v_shaped(0.2, 0.3, 40, 100)
    want = np.interp(STEPS, [0, 40, 100], [0.2, 0.0, 0.3])
    np.testing.assert_allclose([s(int(t)) for t in STEPS], want, atol=1e-15)


@pytest.mark.parametrize("mode", ["min", "max"])
@pytest.mark.parametrize("patience", [0, 2])
def test_s4_on_plateau_follows_reduce_lr_on_plateau(mode, patience):
    """S4 on_plateau(factor=): the rate PyTorch's ReduceLROnPlateau gives a learning rate."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(patience)
    # A noisy curve that improves, then stalls: several reductions happen.
    losses = np.concatenate([np.linspace(3, 1, 15), 1 + 0.05 * rng.random(45)])
    if mode == "max":
        losses = -losses
    ours = schedules.on_plateau(0.4, factor=0.5, patience=patience, min=0.02, mode=mode)
    parameter = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([parameter], lr=0.4)
    theirs = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, mode=mode, factor=0.5, patience=patience, min_lr=0.02, threshold=1e-4
    )
    rates = []
    for loss in losses:
        ours.step(float(loss))
        theirs.step(float(loss))
        assert ours(0) == pytest.approx(optimizer.param_groups[0]["lr"], rel=1e-12)
        rates.append(ours(0))
    assert len(set(rates)) >= 3  # the schedule really moved


def test_s4_on_plateau_step_raises_the_rate_up_to_max():
    """S4 on_plateau(step=): the rate moves by ``step`` per plateau, clipped to ``max``."""
    s = schedules.on_plateau(0.1, step=0.15, patience=1, max=0.3)
    seen = [s.step(1.0) for _ in range(8)]  # never improves after the first
    assert seen == [0.1, 0.1, 0.25, 0.25, 0.3, 0.3, 0.3, 0.3]


def test_s4_on_plateau_state_round_trips_through_a_json_checkpoint():
    """S4: a schedule restored from state_dict() (via JSON) continues as the original does."""
    rng = np.random.default_rng(3)
    losses = list(1 + rng.random(40))
    original = schedules.on_plateau(0.3, factor=0.7, patience=1, min=0.01)
    for loss in losses[:20]:
        original.step(loss)
    saved = json.loads(json.dumps(schedules.schedule_states({"attn": original, "embd": original})))
    assert list(saved) == ["attn"]  # one shared schedule, one state
    restored = schedules.on_plateau(0.3, factor=0.7, patience=1, min=0.01)
    schedules.load_schedule_states({"attn": restored, "embd": restored}, saved)
    for loss in losses[20:]:
        assert original.step(loss) == restored.step(loss)
    with pytest.raises(ValueError, match="keys"):
        restored.load_state_dict({"rate": 0.1})
    with pytest.raises(ValueError, match="sites"):
        schedules.load_schedule_states({"resid": restored}, saved)


@pytest.mark.parametrize(
    "make, error, words",
    [
        (lambda: schedules.linear(0.1, 0.2, 10, 5), ValueError, "end must be >= start"),
        (lambda: schedules.linear(1.5, 0.2, 0, 5), ValueError, "p0 must satisfy"),
        (lambda: schedules.exponential(0.5, 1.5), ValueError, "gamma must satisfy"),
        (lambda: schedules.exponential(0.5, "0.9"), TypeError, "gamma must be a real"),
        (lambda: schedules.triangular(0, 0.3, 0, 10), ValueError, "cycles must be >= 1"),
        (lambda: schedules.v_shaped(0.1, 0.2, 10, 10), ValueError, "warmup=10, total=10"),
        (lambda: schedules.on_plateau(0.3), ValueError, "exactly one of factor= or step="),
        (lambda: schedules.on_plateau(0.3, factor=1.0), ValueError, "factor must be"),
        (lambda: schedules.on_plateau(0.3, step=0.1, mode="up"), ValueError, "mode must be"),
        (lambda: schedules.on_plateau(0.5, step=0.1, max=0.4), ValueError, "p0 must lie"),
        (lambda: schedules.on_plateau(0.3, step=0.1, patience=-1), ValueError, "patience"),
        (lambda: schedules.on_plateau(0.3, step=0.1).step(float("nan")), ValueError, "loss"),
    ],
)
def test_s4_bad_arguments_are_named(make, error, words):
    """S4: each bad argument raises naming it and its value."""
    with pytest.raises(error, match=words):
        make()


@pytest.mark.parametrize(
    "text",
    [
        "linear:0.1:0.3:5:50",
        "exponential:0.5:0.99:0.05",
        "triangular:0:0.3:2:100",
        "v_shaped:0.2:0.1:10:100",
        "on_plateau:0.3:factor=0.5:patience=2:min=0.05:max=0.5:mode=max",
        "on_plateau:0.1:step=0.05:patience=0:min=0:max=1:mode=min",
    ],
)
def test_s4_cli_spelling_round_trips(text):
    """S4: ``--dropout-schedule`` parses each kind; describe() gives the spelling back."""
    s = schedules.parse(text)
    assert schedules.parse(s.describe()).describe() == s.describe()
    assert s.describe() == text
    assert all(0.0 <= s(t) <= 1.0 for t in range(200))


@pytest.mark.parametrize(
    "text, words",
    [
        ("linear:0.1:0.3:5", "not recognised"),
        ("exponential:0.5:x", "'x' is not a float"),
        ("on_plateau:0.3:factor=0.5:speed=2", "'speed=2' is not one of"),
        ("on_plateau:0.3:patience=2", "exactly one of factor= or step="),
    ],
)
def test_s4_cli_spelling_errors_name_the_text(text, words):
    """S4: a malformed spelling raises ValueError naming the text and the field."""
    with pytest.raises(ValueError, match=words):
        schedules.parse(text)


def test_s4_train_command_feeds_on_plateau_and_checkpoints_its_state(tmp_path, capsys):
    """S4: ``dropout-ref train --model gpt --dropout-schedule on_plateau:...`` saves the state."""
    pytest.importorskip("torch")
    from dropout_ref.course.checkpoint import load_checkpoint

    out = tmp_path / "run"
    argv = [
        "train", "--model", "gpt", "--backend", "torch", "--no-progress", "--out", str(out),
        "--dropout-schedule", "on_plateau:0.2:factor=0.5:patience=0:min=0.01",
        "--steps", "4", "--eval-interval", "1", "--eval-batches", "1", "--batch-size", "2",
        "--block-size", "8", "--n-layer", "1", "--n-head", "1", "--n-embd", "8",
    ]  # fmt: skip
    assert main(argv) == 0, capsys.readouterr().err
    _, _, extra = load_checkpoint(out)
    state = extra["dropout_schedule_state"]
    assert list(state) == ["embd"] and state["embd"]["evaluations"] == 5
    # Replaying the logged validation losses through a fresh schedule gives that state.
    rows = json.loads((out / "metrics.json").read_text())["evals"]
    replay = schedules.on_plateau(0.2, factor=0.5, patience=0, min=0.01)
    for row in rows:
        replay.step(row["val_loss"])
    assert replay.state_dict() == state["embd"]
    # Each step ran at the rate the schedule had after the evaluations before it.
    logged = [rate for row in rows[1:] for rates in row["dropout_rates"] for rate in rates]
    assert set(logged) <= {float(np.float32(0.2 * 0.5**k)) for k in range(6)}


# -- one compiled program for every rate (S1 through S4) ------------------------------------


def plateau_rates(n=100):
    """100 steps' rates of an on_plateau schedule that moves at every evaluation after 10."""
    s = schedules.on_plateau(0.1, step=0.005, patience=0, max=0.9)
    rates = []
    for step in range(n):
        rates.append(float(np.float32(s(step))))
        s.step(10.0 - step if step < 10 else 1.0)  # improves, then stalls for good
    assert len(set(rates)) > 80
    return rates


def test_s4_torch_compile_one_program_for_every_rate():
    """S4 + S1: 100 on_plateau steps of a torch.compile'd drop_path/drop_head: one compile."""
    torch = pytest.importorskip("torch")
    from dropout_ref.torch import drop_head, drop_path

    compiles = []

    def counting_backend(gm, example_inputs):
        compiles.append(gm)
        return gm.forward

    def step(x, rate):
        # A tuple: each output is compared with its eager call on its own.
        return drop_path(x, rate, seed=5, offset=3), drop_head(x, rate, seed=5, offset=9)

    torch._dynamo.reset()
    compiled = torch.compile(step, backend=counting_backend, fullgraph=True)
    x = torch.rand(4, 3, 5, dtype=torch.float32) + 0.5
    for rate in plateau_rates():
        out = compiled(x, torch.tensor(rate, dtype=torch.float32))
        for got, want in zip(out, step(x, rate), strict=True):
            torch.testing.assert_close(got, want, rtol=0, atol=0)
    assert len(compiles) == 1, f"{len(compiles)} compilations"


def test_s4_tf_function_one_trace_for_every_rate():
    """S4 + S1: 100 on_plateau steps of a tf.function'd drop_path/drop_head: one trace."""
    tf = pytest.importorskip("tensorflow")
    from dropout_ref.tensorflow import drop_head, drop_path

    traces = []

    @tf.function(jit_compile=True)
    def step(x, rate):
        traces.append(1)  # runs at trace time only
        # A tuple, not a sum: XLA may contract x * s + y into an FMA, 1 ulp off eager.
        return drop_path(x, rate, seed=5, offset=3), drop_head(x, rate, seed=5, offset=9)

    x = tf.random.uniform((4, 3, 5)) + 0.5
    for rate in plateau_rates():
        out = step(x, tf.constant(rate, tf.float32))
        eager = drop_path(x, rate, seed=5, offset=3), drop_head(x, rate, seed=5, offset=9)
        for got, want in zip(out, eager, strict=True):
            np.testing.assert_array_equal(got.numpy(), want.numpy())
    assert len(traces) == 1, f"{len(traces)} traces"


def test_s4_jax_jit_one_trace_for_every_rate():
    """S4 + S1: 100 on_plateau steps of a jax.jit'd drop_path/drop_head: one trace."""
    jax = pytest.importorskip("jax")
    from dropout_ref.jax import drop_head, drop_path

    traces = []

    @jax.jit
    def step(x, rate):
        traces.append(1)  # runs at trace time only
        # A tuple, not a sum: XLA may contract x * s + y into an FMA, 1 ulp off eager.
        return drop_path(x, rate, seed=5, offset=3), drop_head(x, rate, seed=5, offset=9)

    x = jax.random.uniform(jax.random.key(0), (4, 3, 5)) + 0.5
    for rate in plateau_rates():
        out = step(x, jax.numpy.float32(rate))
        eager = drop_path(x, rate, seed=5, offset=3), drop_head(x, rate, seed=5, offset=9)
        for got, want in zip(out, eager, strict=True):
            np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
    assert len(traces) == 1, f"{len(traces)} traces"
