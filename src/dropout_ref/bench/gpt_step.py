"""Training steps of the course GPT, our dropout against the framework's (``--gpt-step``).

Three runs of the same SGD steps (``gpt_train_step`` of
``dropout_ref.course.<backend>.gpt_training``) on the same model, weights and
batches, differing only in the dropout at every site (SPEC X2):

``gpt_step_ours``
    ``dropout_layer`` in its default mode (``mask_seed=None``: the framework's
    generator), as the GPT ships.
``gpt_step_portable``
    ``dropout_layer`` with portable masks (``mask_seed=s``, SPEC X4).
``gpt_step_native``
    The framework's own dropout at every site: the model module's
    ``dropout_layer`` is patched with the bench cases' ``native_dropout_layer``
    (``F.dropout``, ``tf.nn.dropout``, ...), so the steps are otherwise identical.
    JAX's steps are ``nnx.jit`` programs cached per model structure, so there the
    model's dropout modules are replaced by ``flax.nnx.Dropout``
    (``native_gpt_model``) instead.

The targets: ours <= 1.10 x native (:data:`OURS_TARGET`); portable <= 1.05 x native
(:data:`PORTABLE_TARGET`), in the one-table report and in the per-backend line alike.
The model is small enough for a CPU and large enough that dropout is a real
share of a step: 2 blocks of width 128, 4 heads, batch 16 x 64 tokens,
dropout 0.1 at every site (the ``"gpt2-hf"`` preset).
"""

from __future__ import annotations

from typing import Any
from unittest import mock

import numpy as np

from dropout_ref.bench.cases import BENCH_CASES
from dropout_ref.bench.cases.common import BenchCase, CaseSet
from dropout_ref.course.backends import GPT_TRAINING_MODULE
from dropout_ref.models.backends import GPT_MODULE

GPT_OURS = "gpt_step_ours"
GPT_PORTABLE = "gpt_step_portable"
GPT_NATIVE = "gpt_step_native"

#: Backends whose GPT trains and whose bench cases have a ``native_dropout_layer``.
GPT_STEP_BACKENDS = ("torch", "tensorflow", "jax", "mxnet")
#: Targets of ours/native and portable/native for a GPT step, in the one-table report
#: (:func:`dropout_ref.bench.report.gpt_table`) and :func:`gpt_line`.
OURS_TARGET = 1.10
PORTABLE_TARGET = 1.05
#: Steps per timed call.
STEPS_PER_CALL = 3
MASK_SEED = 2026
LEARNING_RATE = 0.1


def bench_config() -> Any:
    """Return the benchmark's :class:`~dropout_ref.models.gpt_config.GPTConfig`."""
    from dropout_ref.models.gpt_config import GPTConfig

    return GPTConfig(
        vocab_size=96, block_size=64, n_layer=2, n_head=4, n_embd=128, dropout="gpt2-hf"
    )


def batches(config: Any, count: int = STEPS_PER_CALL, batch: int = 16) -> list[tuple]:
    """Return ``count`` fixed ``(idx, targets)`` batches of ``batch`` rows."""
    rng = np.random.default_rng(0)
    shape = (batch, config.block_size)
    return [
        (rng.integers(0, config.vocab_size, shape), rng.integers(0, config.vocab_size, shape))
        for _ in range(count)
    ]


def gpt_step_cases(
    backend: str,
    native_dropout_layer: Any,
    native_name: str,
    place: Any = None,
    native_model: Any = None,
) -> CaseSet:
    """Return the three cases of one backend (module docstring).

    Parameters
    ----------
    backend : str
        A backend of :data:`GPT_STEP_BACKENDS`.
    native_dropout_layer : callable
        ``(X, dropout, *, seed=None, offset=0)`` over the framework's own dropout.
    native_name : str
        Its name, for the table.
    place : callable, optional
        Moves a new model to the benchmark's device (``model -> model``).
    native_model : callable, optional
        ``model -> model`` with the framework's dropout modules at every site; used
        instead of patching ``dropout_layer`` when given.

    """
    model_module = GPT_MODULE.load(backend).module
    steps = GPT_TRAINING_MODULE.load(backend)
    config = bench_config()
    data = batches(config)
    models = {}
    for name in (GPT_OURS, GPT_PORTABLE, GPT_NATIVE):
        model = model_module.GPT(config, rng=0)
        if name == GPT_NATIVE and native_model is not None:
            model = native_model(model)
        models[name] = place(model) if place is not None else model
    optimizers = {
        name: steps.gpt_optimizer(model, LEARNING_RATE) for name, model in models.items()
    }

    def run(name: str, mask_seed: int | None) -> float:
        loss = float("nan")
        for idx, targets in data:
            loss = steps.gpt_train_step(
                models[name], optimizers[name], idx, targets, mask_seed=mask_seed
            )
        return loss

    def native() -> float:
        if native_model is not None:
            return run(GPT_NATIVE, None)
        with mock.patch.object(model_module, "dropout_layer", native_dropout_layer):
            return run(GPT_NATIVE, None)

    what = f"{STEPS_PER_CALL} SGD steps of a 2x128 GPT, dropout 0.1 at every site"
    return CaseSet([
        BenchCase(GPT_OURS, lambda: run(GPT_OURS, None), note=f"{what}: dropout_layer"),
        BenchCase(GPT_PORTABLE, lambda: run(GPT_PORTABLE, MASK_SEED),
                  note=f"{what}: dropout_layer(seed=)"),
        BenchCase(GPT_NATIVE, native, note=f"{what}: {native_name}"),
    ])  # fmt: skip


#: The framework dropout each backend's ``native_dropout_layer`` wraps, for the table.
NATIVE_NAMES = {
    "torch": "F.dropout",
    "tensorflow": "tf.nn.dropout",
    "jax": "flax.nnx.Dropout",
    "mxnet": "npx.dropout",
}


def native_for(backend: str) -> tuple[Any, str, Any] | None:
    """Return the native dropout of ``backend``'s GPT step, or ``None`` if it has none.

    Returns
    -------
    tuple or None
        The bench cases' ``native_dropout_layer``, the native's name and
        ``native_gpt_model`` (either hook may be ``None``, not both).
    """
    if not BENCH_CASES.covers(backend):
        return None
    try:
        cases = BENCH_CASES.load(backend)
    except ImportError:
        return None
    if cases.native_dropout_layer is None and cases.native_gpt_model is None:
        return None
    name = NATIVE_NAMES.get(backend, "native dropout")
    return cases.native_dropout_layer, name, cases.native_gpt_model


def gpt_rows(backend: str, repeats: int) -> list[dict[str, Any]]:
    """Time the three cases of ``backend``; report rows (empty where it has no GPT steps)."""
    from dropout_ref.bench.timing import time_interleaved

    found = native_for(backend) if backend in GPT_STEP_BACKENDS else None
    if found is None:
        return []
    if not GPT_TRAINING_MODULE.covers(backend):
        return []
    native_layer, native_name, native_model = found
    case_set = gpt_step_cases(backend, native_layer, native_name, native_model=native_model)
    timings = time_interleaved(case_set.cases, repeats)
    return [
        {
            "case": case.name, "size": None, "log2_size": None, "dtype": "float32",
            "status": "ok", "note": case.note, "repeats": len(timings[case.name].times_ms),
            "min_ms": timings[case.name].min_ms, "median_ms": timings[case.name].median_ms,
            "first_call_ms": timings[case.name].first_call_ms, "compile_s": None,
        }
        for case in case_set.cases
    ]  # fmt: skip


def gpt_line(result: dict[str, Any]) -> str | None:
    """Return the GPT-step comparison of one backend for the report, or ``None``."""
    rows = {row["case"]: row for row in result.get("rows", []) if row.get("log2_size") is None}
    if not {GPT_OURS, GPT_PORTABLE, GPT_NATIVE} <= set(rows):
        return None
    native = rows[GPT_NATIVE]["min_ms"]
    ours, portable = rows[GPT_OURS]["min_ms"], rows[GPT_PORTABLE]["min_ms"]
    return (
        f"{result['backend']}: {STEPS_PER_CALL} GPT train steps, native {native:.1f} ms, "
        f"ours {ours:.1f} ms ({ours / native:.2f}x, target <= {OURS_TARGET:.2f}), portable "
        f"{portable:.1f} ms ({portable / native:.2f}x, target <= {PORTABLE_TARGET:.2f})"
    )


def result_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Return one row per backend with GPT steps: its native, ours and portable rows."""
    out = []
    for result in results["backends"]:
        rows = {row["case"]: row for row in result.get("rows", [])
                if row.get("log2_size") is None}
        if {GPT_OURS, GPT_PORTABLE, GPT_NATIVE} <= set(rows):
            out.append({"backend": result["backend"], "native": rows[GPT_NATIVE],
                        "ours": rows[GPT_OURS], "portable": rows[GPT_PORTABLE]})
    return out
