"""Native audit: each framework's own dropout breaks exactly its documented SPEC clauses.

Like a strict xfail: a documented deviation that disappears fails here, and so
does a new, undocumented one. The docs page docs/deviations/<name>.md must list the same
(native, clause) pairs as ``EXPECTED_DEVIATIONS`` in ``dropout_ref.<name>.natives`` (a backend
without a page documents none).
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

from dropout_ref.conformance import check_dropout

ROOT = Path(__file__).resolve().parents[1]
ROW = re.compile(r"^\|\s*`(?P<native>[^`]+)`\s*\|\s*(?P<clause>D\d+)\s*\|")


def _natives(backend):
    return importlib.import_module(f"dropout_ref.conformance.natives.{backend.arrays.name}")


def documented_pairs(backend_name: str) -> set[tuple[str, str]]:
    """(native, clause) rows of the docs page docs/deviations/<name>.md (none without one)."""
    page = ROOT / "docs" / "deviations" / f"{backend_name}.md"
    text = page.read_text(encoding="utf-8") if page.exists() else ""
    return {(m["native"], m["clause"]) for m in map(ROW.match, text.splitlines()) if m}


def test_deviations_markdown_matches_code(audited_backend) -> None:
    """docs/deviations/<name>.md and EXPECTED_DEVIATIONS list the same (native, clause) pairs."""
    backend = audited_backend
    natives = _natives(backend)
    structured = {**getattr(natives, "STRUCTURED", {}), **getattr(natives, "ATTENTION", {})}
    assert set(natives.EXPECTED_DEVIATIONS) == set(natives.NATIVES) | set(structured)
    # Natives present only under some KERAS_BACKEND are documented whatever this process runs.
    documented = getattr(natives, "DOCUMENTED_DEVIATIONS", natives.EXPECTED_DEVIATIONS)
    assert set(natives.NATIVES) | set(structured) <= set(documented)
    in_code = {(n, c) for n, clauses in documented.items() for c in clauses}
    assert documented_pairs(backend.arrays.name) == in_code


def _native_params():
    names = {
        "torch": ["torch.nn.functional.dropout", "torch.nn.Dropout"],
        "mxnet": ["mxnet.npx.dropout", "mxnet.gluon.nn.Dropout"],
        "tensorflow": [
            "tf.nn.dropout",
            "keras.layers.Dropout (tensorflow)",
            "keras.random.dropout (tensorflow)",
        ],
        "jax": ["flax.nnx.Dropout", "flax.linen.Dropout"],
    }
    return [(b, n) for b, ns in names.items() for n in ns]


#: Structured natives (SPEC D12), checked by the kit's noise_shape variant.
STRUCTURED_NATIVES = {
    "torch": [
        "torch.nn.Dropout1d",
        "torch.nn.Dropout2d",
        "torch.nn.Dropout3d",
        "torch.nn.functional.dropout2d",
        # SPEC V1, one decision per sample: only where timm / torchvision / keras_cv import.
        "timm.layers.drop_path",
        "timm.layers.DropPath",
        "torchvision.ops.stochastic_depth(mode='row')",
        "torchvision.ops.StochasticDepth(mode='row')",
        "keras_cv.layers.DropPath (torch)",
    ],
    "mxnet": ["mxnet.npx.dropout(axes=)", "mxnet.gluon.nn.Dropout(axes=)"],
    "tensorflow": [
        "tf.nn.dropout(noise_shape=)",
        "keras.layers.Dropout(noise_shape=) (tensorflow)",
        "keras.layers.SpatialDropout1D (tensorflow)",
        "keras.layers.SpatialDropout2D (tensorflow)",
        "keras_cv.layers.DropPath (tensorflow)",
    ],
    "jax": ["flax.nnx.Dropout(broadcast_dims=)", "keras_cv.layers.DropPath (jax)"],
}


@pytest.mark.parametrize(("backend_name", "native"), _native_params())
def test_native_deviates_exactly_as_documented(backend_name: str, native: str) -> None:
    """D1-D11 on a native op: the failed clauses are exactly the documented deviations."""
    from dropout_ref.core.registry import get_backend

    try:
        get_backend(backend_name)
    except ImportError as exc:
        pytest.skip(str(exc))
    natives = importlib.import_module(f"dropout_ref.conformance.natives.{backend_name}")
    if native not in natives.NATIVES:
        pytest.skip(f"{native} needs KERAS_BACKEND={backend_name} (Keras runs on another here)")
    report = check_dropout(natives.NATIVES[native], backend=backend_name, name=native)
    expected = sorted(natives.EXPECTED_DEVIATIONS[native], key=lambda c: int(c[1:]))
    gone = [c for c in expected if c not in report.failures]
    new = [c for c in report.failures if c not in expected]
    assert not gone, f"{native}: documented deviations no longer show: {gone}\n{report.summary()}"
    assert not new, f"{native}: undocumented failures: {new}\n{report.summary()}"


@pytest.mark.parametrize(
    ("backend_name", "native"),
    [(b, n) for b, ns in STRUCTURED_NATIVES.items() for n in ns],
)
def test_d12_structured_native_deviates_exactly_as_documented(backend_name: str, native: str):
    """D1-D12 on a structured native (noise_shape variant): D12 holds, the rest as documented."""
    from dropout_ref.core.registry import get_backend

    try:
        get_backend(backend_name)
    except ImportError as exc:
        pytest.skip(str(exc))
    natives = importlib.import_module(f"dropout_ref.conformance.natives.{backend_name}")
    if native not in natives.STRUCTURED:
        pytest.skip(
            f"{native} is not present here: Keras runs on another backend than "
            f"{backend_name}, or its package (timm, torchvision, keras_cv) is not installed"
        )
    fn, noise_shape = natives.STRUCTURED[native]
    report = check_dropout(fn, backend=backend_name, name=native, noise_shape=noise_shape)
    assert report.status("D12") == "pass", report.summary()
    expected = sorted(natives.EXPECTED_DEVIATIONS[native], key=lambda c: int(c[1:]))
    gone = [c for c in expected if c not in report.failures]
    new = [c for c in report.failures if c not in expected]
    assert not gone, f"{native}: documented deviations no longer show: {gone}\n{report.summary()}"
    assert not new, f"{native}: undocumented failures: {new}\n{report.summary()}"


@pytest.mark.one_environment
@pytest.mark.parametrize("backend_name", ["jax", "torch"])
def test_keras_natives_on_each_keras_backend_deviate_as_documented(backend_name: str) -> None:
    """Keras 3 on jax and torch: one process each (KERAS_BACKEND is fixed at import).

    The conformance worker of that backend, as ``dropout-ref report`` runs it, must find
    exactly the documented deviations of Keras' two dropouts there.
    """
    from dropout_ref.core.registry import get_backend
    from tests.worker_runs import worker_reports

    try:
        get_backend(backend_name)
    except ImportError as exc:
        pytest.skip(str(exc))
    pytest.importorskip("keras")
    natives = importlib.import_module(f"dropout_ref.conformance.natives.{backend_name}")
    keras_names = [n for n in natives.DOCUMENTED_DEVIATIONS if n.startswith("keras.")]
    events = worker_reports(
        backend_name, "--only", "keras.", "--clauses", *[f"D{i}" for i in range(1, 12)],
        env={"KERAS_BACKEND": backend_name},
    )  # fmt: skip
    reports = {name: event["report"] for name, event in events.items()}
    # --only keeps the worker to Keras' rows (our layer and torch's natives have their tests).
    assert set(keras_names) <= set(reports), sorted(reports)
    assert all(name.startswith("keras.") for name in reports), sorted(reports)
    for name in keras_names:
        failures = {c for c, r in reports[name]["results"].items() if r["status"] == "fail"}
        assert failures == set(natives.DOCUMENTED_DEVIATIONS[name]), (name, failures)
