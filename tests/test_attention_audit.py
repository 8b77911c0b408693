"""The attention-dropout audit (identity trick): the kit's power, and the natives as documented.

``dropout_ref.conformance.attention.audit`` checks D3, D4, D5, D6, D9 and D10 on the
output of an attention kernel with zero queries and keys and identity values.
A correct reference probe (our numpy dropout on the uniform attention matrix)
passes; probes with one planted fault each fail exactly the clause it breaks.
Random tests run at the kit's default false-alarm probability (1e-6 per run,
Bonferroni-split), with fixed seeds.
"""

from __future__ import annotations

import importlib

import numpy as np
import pytest

from dropout_ref.conformance.attention.audit import (
    BATCH,
    HEADS,
    SEQ,
    AttentionProbe,
    check_attention,
)
from dropout_ref.numpy import dropout_layer

SHAPE = (BATCH, HEADS, SEQ, SEQ)


def reference_probe(fault=None) -> AttentionProbe:
    """Our numpy dropout on the uniform attention matrix, with an optional planted fault."""
    state = {"rng": np.random.default_rng(0)}

    def run(p, dtype):
        A = np.full(SHAPE, 1.0 / SEQ, dtype=dtype)
        if fault == "broadcast":
            np.random.seed(int(state["rng"].integers(2**31)))
            one = dropout_layer(A[0, 0], p)
            return np.broadcast_to(one, SHAPE).astype(np.float64)
        if fault == "nan_at_1" and p == 1.0:
            with np.errstate(all="ignore"):
                return np.full(SHAPE, np.nan)
        if fault == "unseeded":
            np.random.seed(None)
        else:
            np.random.seed(int(state["rng"].integers(2**31)))
        out = dropout_layer(A, p).astype(np.float64)
        if fault == "scale" and 0 < p < 1:
            out = out * (1 + 2**-20)
        return out

    def seed(s):
        state["rng"] = np.random.default_rng(s)

    return AttentionProbe(run=run, seed=seed, dtypes=("float32", "float64", "float16"))


def test_attention_kit_passes_a_correct_kernel():
    report = check_attention(reference_probe(), name="reference", backend="numpy")
    assert report.ok, report.summary()
    assert [c for c, r in report.results.items() if r.status == "pass"] == [
        "D3", "D4", "D5", "D6", "D9", "D10",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("fault", "clause", "words"),
    [
        ("broadcast", "D4", "batch elements 0 and 1 correlate"),
        ("nan_at_1", "D3", "not +0.0"),
        ("scale", "D5", "ulp off"),
        ("unseeded", "D9", "not reproducible"),
    ],
)
def test_attention_kit_catches_planted_faults(fault, clause, words):
    report = check_attention(reference_probe(fault), name=fault, backend="numpy")
    assert clause in report.failures, report.summary()
    assert words in report.results[clause].message


ATTENTION_NATIVES = {
    "torch": [
        "F.scaled_dot_product_attention(dropout_p=)",
        "F.scaled_dot_product_attention[MATH]",
        "F.scaled_dot_product_attention[FLASH_ATTENTION]",
    ],
    "tensorflow": ["keras.layers.MultiHeadAttention(dropout=) (tensorflow)"],
    "jax": [
        "flax.nnx.dot_product_attention(dropout_rate=)",
        "flax.nnx.dot_product_attention(broadcast_dropout=False)",
    ],
}


@pytest.mark.parametrize(
    ("backend_name", "native"), [(b, n) for b, ns in ATTENTION_NATIVES.items() for n in ns]
)
def test_attention_native_deviates_exactly_as_documented(backend_name, native):
    """Each attention kernel fails exactly its documented clauses (docs/deviations/)."""
    from dropout_ref.core.registry import get_backend

    try:
        get_backend(backend_name)
    except ImportError as exc:
        pytest.skip(str(exc))
    natives = importlib.import_module(f"dropout_ref.conformance.natives.{backend_name}")
    if native not in natives.ATTENTION:
        pytest.skip(f"{native} needs KERAS_BACKEND={backend_name} (Keras runs on another here)")
    report = check_attention(natives.ATTENTION[native](), name=native, backend=backend_name)
    expected = sorted(natives.EXPECTED_DEVIATIONS[native], key=lambda c: int(c[1:]))
    assert report.failures == expected, report.summary()
    if native.endswith("[FLASH_ATTENTION]"):
        # The CPU's fused kernel refuses dropout_p > 0: n/a with torch's reason, not a pass.
        assert report.status("D4") == "n/a"
        assert "does not run at dropout_p" in report.results["D4"].message
