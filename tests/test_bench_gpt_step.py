"""``dropout-ref bench --gpt-step``: GPT train steps, our dropout against the framework's."""

from __future__ import annotations

import pytest

from dropout_ref.bench.gpt_step import (
    GPT_NATIVE,
    GPT_OURS,
    GPT_PORTABLE,
    gpt_line,
    gpt_step_cases,
    native_for,
)


def test_native_case_runs_the_framework_dropout_at_every_site(monkeypatch):
    pytest.importorskip("torch")
    import importlib

    import dropout_ref.torch  # noqa: F401  (the adapter before the model module)

    gpt_module = importlib.import_module("dropout_ref.models.torch.gpt")

    native, name, model_hook = native_for("torch")
    assert model_hook is None  # torch: dropout_layer is patched
    calls = {"ours": 0, "native": 0}
    ours = gpt_module.dropout_layer

    def counting_ours(*args, **kwargs):
        calls["ours"] += 1
        return ours(*args, **kwargs)

    def counting_native(*args, **kwargs):
        calls["native"] += 1
        return native(*args, **kwargs)

    monkeypatch.setattr(gpt_module, "dropout_layer", counting_ours)
    cases = {case.name: case for case in gpt_step_cases("torch", counting_native, name).cases}
    sites = 1 + 3 * 2  # SPEC X4: embd, then attn, resid, resid per block
    cases[GPT_NATIVE].run()
    assert calls == {"ours": 0, "native": 3 * sites}
    cases[GPT_OURS].run()
    cases[GPT_PORTABLE].run()
    assert calls == {"ours": 2 * 3 * sites, "native": 3 * sites}


def test_jax_native_case_runs_flax_dropout_at_every_site(monkeypatch):
    """JAX: the native model holds flax.nnx.Dropout at every site and never calls ours."""
    pytest.importorskip("flax.nnx")
    import math

    from flax import nnx

    from dropout_ref.bench.gpt_step import bench_config
    from dropout_ref.jax import GPT
    from dropout_ref.models.jax import mlp as course_mlp

    native, name, model_hook = native_for("jax")
    assert native is None and name == "flax.nnx.Dropout" and model_hook is not None
    calls = []
    ours = course_mlp.dropout_layer

    def counting_ours(*args, **kwargs):
        calls.append(1)
        return ours(*args, **kwargs)

    monkeypatch.setattr(course_mlp, "dropout_layer", counting_ours)
    case_set = gpt_step_cases("jax", native, name, native_model=model_hook)
    cases = {case.name: case for case in case_set.cases}
    assert math.isfinite(cases[GPT_NATIVE].run())
    assert calls == []  # traced with flax's dropout only
    model = model_hook(GPT(bench_config(), rng=0))
    flax_sites = [m for _, m in model.iter_modules() if isinstance(m, nnx.Dropout)]
    assert len(flax_sites) == 1 + 3 * 2  # SPEC X4: embd, then attn, resid, resid per block
    assert not any(isinstance(m, course_mlp.Dropout) for _, m in model.iter_modules())


def test_gpt_line_reports_both_ratios_and_targets():
    rows = [
        {"case": GPT_OURS, "log2_size": None, "min_ms": 105.0},
        {"case": GPT_PORTABLE, "log2_size": None, "min_ms": 120.0},
        {"case": GPT_NATIVE, "log2_size": None, "min_ms": 100.0},
    ]
    line = gpt_line({"backend": "torch", "rows": rows})
    assert "(1.05x, target <= 1.10)" in line and "(1.20x, target <= 1.05)" in line
    assert gpt_line({"backend": "torch", "rows": rows[:2]}) is None
