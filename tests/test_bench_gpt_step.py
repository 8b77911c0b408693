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

    gpt_module = importlib.import_module("dropout_ref.course.torch.gpt")

    native, name = native_for("torch")
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


def test_gpt_line_reports_both_ratios_and_targets():
    rows = [
        {"case": GPT_OURS, "log2_size": None, "min_ms": 105.0},
        {"case": GPT_PORTABLE, "log2_size": None, "min_ms": 120.0},
        {"case": GPT_NATIVE, "log2_size": None, "min_ms": 100.0},
    ]
    line = gpt_line({"backend": "torch", "rows": rows})
    assert "(1.05x, target <= 1.10)" in line and "(1.20x, target <= 1.3)" in line
    assert gpt_line({"backend": "torch", "rows": rows[:2]}) is None
