"""``dropout-ref bench --compiled`` (SPEC S1, S2): one program while the rate and seed change.

A short loop (3 steps after warm-up) per installed framework: the frameworks' own
counters (Dynamo's unique graphs, ``tf.function`` traces, the ``jax.jit`` cache)
show one program and no recompilation while the rates and seeds change, and the
result has both baselines' step times. Timings are reported, never asserted.
"""

from __future__ import annotations

import math

import pytest

from dropout_ref.bench.compiled_loop import (
    COMPILED_BACKENDS,
    format_report,
    loop_inputs,
    run_compiled_loops,
)
from dropout_ref.schedules import early


@pytest.mark.one_environment
@pytest.mark.parametrize("backend", COMPILED_BACKENDS)
def test_s1_s2_compiled_loop_compiles_one_program(backend):
    pytest.importorskip({"tensorflow": "tensorflow", "torch": "torch", "jax": "flax.nnx"}[backend])
    results = run_compiled_loops((backend,), steps=3)
    result = results["backends"][backend]
    assert result["programs_after_warmup"] == 1, result
    assert result["recompiles_in_loop"] == 0, result
    for key in ("runtime_step_ms", "constant_step_ms", "seeded_step_ms"):
        assert math.isfinite(result[key]) and result[key] > 0, (key, result)
    assert result["runtime_over_seeded"] == pytest.approx(
        result["runtime_step_ms"] / result["seeded_step_ms"]
    )
    report = format_report(results)
    assert backend in report and "seeded ms" in report


def test_s3_loop_inputs_follow_the_early_linear_schedule():
    inputs = loop_inputs(5)
    assert inputs.seeds == [1000, 1001, 1002, 1003, 1004]
    first, second = early(0.2, 5, "linear"), early(0.5, 5, "linear")
    for i, (r1, r2) in enumerate(inputs.rates):
        assert r1 == pytest.approx(first(i), rel=1e-7) and r2 == pytest.approx(second(i), rel=1e-7)
    assert inputs.rates[0] == pytest.approx((0.2, 0.5)) and len(set(inputs.rates)) == 5


def test_missing_framework_is_reported_not_run(monkeypatch):
    from dropout_ref.bench import cases

    class Refusing:
        def load(self, name):
            raise ImportError(f"the {name} backend needs its framework")

    monkeypatch.setattr(cases, "BENCH_CASES", Refusing())
    results = run_compiled_loops(("torch",), steps=1)
    assert "needs its framework" in results["backends"]["torch"]["skipped"]
    assert "skipped" in format_report(results)
