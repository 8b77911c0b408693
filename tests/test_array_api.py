"""The array_api backend on every namespace installed here (SPEC D7, D9, P2, P5, P7).

The shared tests (conftest's ``backend``) check it through its bridge's namespace,
``array_api_strict``; these run the same adapter on NumPy (through array-api-compat),
torch and JAX (where installed), whose arrays it must return in their own namespace.
"""

from __future__ import annotations

import importlib
import io
import json
from contextlib import redirect_stdout

import numpy as np
import pytest

array_api_compat = pytest.importorskip("array_api_compat")

from dropout_ref.core.contract import NotApplicable  # noqa: E402
from dropout_ref.core.philox import numpy_keep_mask  # noqa: E402
from dropout_ref.core.thresholds import word_threshold  # noqa: E402


def _namespace(name: str):
    """The namespace ``name`` as array-api-compat gives it for that library's arrays, or skip."""
    if name == "array_api_strict":
        return pytest.importorskip("array_api_strict")
    if name == "numpy":
        return importlib.import_module("array_api_compat.numpy")
    if name == "torch":
        pytest.importorskip("torch")
        return importlib.import_module("array_api_compat.torch")
    raise ValueError(name)


NAMESPACES = ["array_api_strict", "numpy", "torch"]


@pytest.fixture(params=NAMESPACES)
def bridge(request):
    """The backend's array bridge making its arrays in each namespace."""
    from dropout_ref.array_api import BACKEND

    return BACKEND.arrays.with_namespace(_namespace(request.param))


@pytest.fixture
def layer():
    from dropout_ref.array_api import dropout_layer

    return dropout_layer


def _numpy_layer():
    from dropout_ref.numpy import dropout_layer

    return dropout_layer


CASES = [
    # shape, rate, seed, offset: 0-d, empty, counters crossing 2**32 blocks, largest seed.
    ((), 0.5, 1, 0),
    ((0, 3), 0.5, 1, 0),
    ((7, 13), 0.3, 2024, 3),
    ((5, 33), 0.9, 2**64 - 1, 4 * 2**32 - 37),
    ((2, 3, 4, 5), 0.001, 12345, 2**40 + 1),
]


@pytest.mark.parametrize(("shape", "rate", "seed", "offset"), CASES)
def test_p2_mask_and_values_equal_the_numpy_backend_in_every_namespace(
    bridge, layer, shape, rate, seed, offset
):
    """P2: the same keep mask, bit for bit, and the numpy backend's values, in each namespace."""
    values = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    out = layer(bridge.from_numpy(values), rate, seed=seed, offset=offset)
    expected = _numpy_layer()(values, rate, seed=seed, offset=offset)
    got = bridge.to_numpy(out)
    keep = numpy_keep_mask(shape, word_threshold(rate), seed, offset)
    np.testing.assert_array_equal(got != 0, keep & (values != 0))
    np.testing.assert_array_equal(got, expected)


def test_p5_d7_output_stays_in_x_namespace_dtype_and_device(bridge, layer):
    """D7/P5: the output is an array of X's namespace, of X's dtype, on X's device."""
    for dtype in bridge.float_dtypes:
        X = bridge.from_numpy(np.linspace(-2, 2, 24).reshape(4, 6), dtype)
        for kwargs in ({"seed": 9}, {}, {"seed": 9, "noise_shape": (4, 1)}):
            out = layer(X, 0.4, **kwargs)
            assert array_api_compat.array_namespace(out) is array_api_compat.array_namespace(X)
            assert bridge.dtype_name(out) == dtype, (dtype, kwargs)
            assert bridge.device_name(out) == bridge.device_name(X)
            assert tuple(out.shape) == (4, 6)


def test_d7_float16_where_the_namespace_has_it(bridge):
    """D7: float16 is offered exactly where the namespace has it (not in array_api_strict)."""
    xp = bridge.xp
    assert ("float16" in bridge.float_dtypes) == hasattr(xp, "float16")
    assert {"float32", "float64"} <= set(bridge.float_dtypes)


@pytest.mark.parametrize("dtype", ["int32", "int64", "bool"])
def test_d7_integer_and_bool_x_raise_type_error_saying_how_to_convert(bridge, layer, dtype):
    """D7: integer or bool X raises TypeError naming the dtype and the conversion."""
    X = bridge.from_numpy(np.ones(3), dtype)
    with pytest.raises(TypeError, match=rf"dtype {dtype}.*xp\.astype\(X, xp\.float32\)"):
        layer(X, 0.5, seed=1)


def test_d7_not_an_array_is_refused_naming_x(layer):
    with pytest.raises(TypeError, match=r"X must be an array of an Array API namespace.*list"):
        layer([1.0, 2.0], 0.5)


def test_d9_default_mode_is_seeded_by_np_random_seed(bridge, layer):
    """D9 (array_api): seed=None draws from NumPy's global generator; np.random.seed repeats it.

    For the same seed the mask is the numpy backend's. Two unseeded calls differ:
    the chance that 4096 fair decisions coincide is 2**-4096.
    """
    values = np.ones((64, 64), np.float32)
    X = bridge.from_numpy(values)
    np.random.seed(5)
    first = bridge.to_numpy(layer(X, 0.5))
    second = bridge.to_numpy(layer(X, 0.5))
    np.random.seed(5)
    again = bridge.to_numpy(layer(X, 0.5))
    np.random.seed(5)
    oracle = _numpy_layer()(values, 0.5)
    np.testing.assert_array_equal(first, again)
    np.testing.assert_array_equal(first, oracle)
    assert not np.array_equal(first, second)


def test_p7_block_of_a_global_array_in_every_namespace(bridge, layer):
    """P7: a non-contiguous block gets that block of the global mask, in X's namespace."""
    values = np.arange(1.0, 1.0 + 9 * 10, dtype=np.float32).reshape(9, 10)
    whole = _numpy_layer()(values, 0.5, seed=77, offset=5)
    block = bridge.from_numpy(values[2:7, 3:8])
    out = layer(block, 0.5, seed=77, offset=5, global_shape=(9, 10), block_start=(2, 3))
    np.testing.assert_array_equal(bridge.to_numpy(out), whole[2:7, 3:8])


@pytest.mark.parametrize("noise_shape", [None, (None, None, 1, 1)])
def test_d1_d12_the_conformance_kit_passes_in_every_namespace(bridge, noise_shape, monkeypatch):
    """D1-D12: the kit's whole D run, on arrays of each namespace (D8 n/a: no autodiff).

    False-alarm probability: the kit's DEFAULT_ALPHA per run (Bonferroni-split over its
    random tests), so at most 6 * DEFAULT_ALPHA over this test's six runs.
    """
    from dropout_ref.array_api import BACKEND
    from dropout_ref.conformance import runner

    # The kit reaches a backend's arrays through runner.backend_arrays: give it this namespace.
    monkeypatch.setattr(runner, "backend_arrays", lambda backend, device=None: bridge)
    report = runner.check_dropout(
        BACKEND.kit_dropout_layer
        if noise_shape is None
        else lambda X, p: BACKEND.kit_dropout_layer(X, p, noise_shape=noise_shape),
        backend="array_api",
        noise_shape=noise_shape,
    )
    assert report.ok, report.summary()
    statuses = {c: r.status for c, r in report.results.items()}
    assert statuses["D8"] == "n/a"
    assert statuses["D12"] == ("n/a" if noise_shape is None else "pass")


def test_d8_no_autodiff_is_not_applicable(bridge):
    """D8: the standard has no autodiff; the bridge says so (the kit's D8 cell is n/a)."""
    with pytest.raises(NotApplicable, match="no automatic differentiation"):
        bridge.value_and_grad(lambda x: x, bridge.from_numpy(np.ones(2)), np.ones(2))


def test_p2_jax_arrays_through_compat_or_a_clear_int64_error(layer):
    """P2 with JAX arrays: bit for bit under jax_enable_x64; without it a TypeError says why."""
    jax = pytest.importorskip("jax")
    jnp = importlib.import_module("jax.numpy")
    X = jnp.ones((6, 11), dtype=jnp.float32)
    if not jax.config.jax_enable_x64:
        with pytest.raises(TypeError, match="jax_enable_x64"):
            layer(X, 0.3, seed=3, offset=2**32 - 5)
        return
    out = layer(X, 0.3, seed=3, offset=2**32 - 5)
    keep = numpy_keep_mask((6, 11), word_threshold(0.3), 3, 2**32 - 5)
    np.testing.assert_array_equal(np.asarray(out) != 0, keep)


# -- the tools that do not cover the backend say so ----------------------------------------------


def test_course_names_are_absent_with_the_reason():
    import dropout_ref.array_api as adapter
    from dropout_ref.core.exports import exported_names

    assert exported_names("array_api") == ()
    with pytest.raises(AttributeError, match=r"course's models cover .* not array_api"):
        adapter.MLP  # noqa: B018


def test_report_worker_checks_only_our_layer():
    """The worker audits no natives and no MLP where their tools do not cover the backend."""
    from dropout_ref.conformance import worker

    stdout = io.StringIO()
    with redirect_stdout(stdout):
        assert worker.main(["--backend", "array_api", "--clauses", "D2", "M3"]) == 0
    events = [json.loads(line) for line in stdout.getvalue().splitlines()]
    assert events[0]["implementations"] == [
        "dropout_ref.array_api.dropout_layer",
        "dropout_ref.array_api.dropout_layer(noise_shape)",
        "dropout_ref.array_api.drop_path",
        "dropout_ref.array_api.drop_head(rescale='rate')",
    ]
    reports = [e["report"] for e in events if e["event"] == "report"]
    assert [r["results"]["D2"]["status"] for r in reports] == ["pass"] * 4
    assert events[-1] == {"event": "done"}


def test_report_worker_keeps_the_mlp_row_where_the_course_covers_the_backend():
    """The worker's MLP row follows MLP_MODULE.covers (numpy is covered: M2-M4 are checked)."""
    from dropout_ref.conformance import worker

    stdout = io.StringIO()
    with redirect_stdout(stdout):
        assert worker.main(["--backend", "numpy", "--clauses", "D2", "M3"]) == 0
    events = [json.loads(line) for line in stdout.getvalue().splitlines()]
    assert "dropout_ref.numpy.MLP" in events[0]["implementations"]
    model = [e["report"] for e in events if e["event"] == "report"][-1]
    assert model["implementation"] == "dropout_ref.numpy.MLP"
    assert model["results"]["M3"]["status"] == "pass"


@pytest.mark.parametrize("command", [["train", "--backend"], ["compare", "--backends"]])
def test_course_commands_refuse_the_backend_cleanly(command, capsys):
    from dropout_ref.cli import main as cli

    with pytest.raises(SystemExit) as exit_info:
        cli.main([*command, "array_api"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'array_api'" in capsys.readouterr().err
