"""Other packages' stochastic depth (SPEC V1) as portable-mask sites (SPEC P8) and audit rows.

Inside ``dropout_ref.torch.portable_masks(seed)``, timm's ``drop_path``/``DropPath`` and
torchvision's ``stochastic_depth``/``StochasticDepth`` in training mode equal the numpy
oracle's ``drop_path(x, p, seed=seed, offset=j * 2**40, mode=...)``, while a dispatch mode
makes every op that draws from torch's generator raise (so a native mask cannot hide);
in eval mode they are the package's own function and take no number. KerasCV's
``DropPath`` is checked the same way on whatever backend Keras runs on. Each test skips,
naming the package, where it is not installed (only the optional vision environment,
``backends/vision/requirements.txt``, has timm and torchvision).
"""

from __future__ import annotations

import importlib
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import dropout_ref.numpy as oracle  # noqa: E402
from dropout_ref.conformance.natives.stochastic_depth import LOAD_ERRORS  # noqa: E402
from dropout_ref.core.sites import site_offset  # noqa: E402
from dropout_ref.torch import portable_masks  # noqa: E402
from tests.test_doors_torch import RaiseOnNativeRandom  # noqa: E402
from tests.worker_runs import worker_reports  # noqa: E402

SEED = 2024
P = 0.4


VISION = "it is in the optional vision environment: pip install -r backends/vision/requirements.txt"


def _package(name: str, where: str = VISION):
    """Import ``name`` or skip with the reason (absent, or not loading against this torch)."""
    try:
        return importlib.import_module(name)
    except LOAD_ERRORS as exc:
        pytest.skip(f"{name} does not import here ({type(exc).__name__}: {exc}); {where}")


@pytest.fixture
def timm_layers():
    return _package("timm.layers")


@pytest.fixture
def tv_ops():
    return _package("torchvision.ops")


def _x(shape=(16, 3, 5)) -> torch.Tensor:
    g = torch.Generator().manual_seed(3)
    return torch.randn(shape, generator=g, dtype=torch.float64)


def _calls(timm_layers, tv_ops):
    """(name, call(x), mode) of every door's training-mode form."""
    return [
        ("timm.layers.drop_path", lambda x: timm_layers.drop_path(x, P, training=True), "row"),
        ("timm.layers.DropPath", lambda x: timm_layers.DropPath(P)(x), "row"),
        (
            "torchvision.ops.stochastic_depth(row)",
            lambda x: tv_ops.stochastic_depth(x, P, "row"), "row",
        ),
        (
            "torchvision.ops.stochastic_depth(batch)",
            lambda x: tv_ops.stochastic_depth(x, P, "batch", training=True), "batch",
        ),
        ("torchvision.ops.StochasticDepth(row)", lambda x: tv_ops.StochasticDepth(P, "row")(x),
         "row"),
        (
            "torchvision.ops.StochasticDepth(batch)",
            lambda x: tv_ops.StochasticDepth(P, "batch")(x), "batch",
        ),
    ]  # fmt: skip


def test_v1_native_stochastic_depth_draws_native_masks_outside_the_context(timm_layers, tv_ops):
    """Control: the raising mode catches the packages' own draws (bernoulli_)."""
    x = _x()
    for name, call, _ in _calls(timm_layers, tv_ops):
        with RaiseOnNativeRandom(), pytest.raises(AssertionError, match="native random op"):
            call(x)
        assert name  # every door draws natively without the context


def test_p8_native_stochastic_depth_equals_the_numpy_drop_path(timm_layers, tv_ops):
    """Every call is a site: our numpy oracle's drop_path at its offset, mode kept."""
    x = _x()
    calls = _calls(timm_layers, tv_ops)
    with portable_masks(SEED) as ctx, RaiseOnNativeRandom():
        outs = [call(x) for _, call, _ in calls]
    assert ctx.count == len(calls)
    for j, ((name, _, mode), out) in enumerate(zip(calls, outs, strict=True)):
        expected = oracle.drop_path(x.numpy(), P, seed=SEED, offset=site_offset(j), mode=mode)
        np.testing.assert_array_equal(out.numpy(), expected, err_msg=name)
        site = ctx.sites[j]
        noise = (x.shape[0], 1, 1) if mode == "row" else (1, 1, 1)
        assert (site.j, site.noise_shape, site.rate) == (j, noise, P), name
    # The draws differ between sites (offsets), and row mode really drops some samples.
    kept = [bool((o != 0).any()) for o in outs[0]]
    assert 0 < sum(kept) < len(kept)


def test_p8_native_stochastic_depth_gradient_follows_the_portable_mask(timm_layers):
    x = _x().requires_grad_(True)
    with portable_masks(SEED), RaiseOnNativeRandom():
        out = timm_layers.DropPath(P)(x)
    out.sum().backward()
    mask = oracle.drop_path(np.ones(tuple(x.shape)), P, seed=SEED, offset=0)
    np.testing.assert_allclose(x.grad.numpy(), mask, rtol=1e-15)


def test_p8_eval_mode_is_the_package_own_result_and_no_site(timm_layers, tv_ops):
    x = _x()
    path, depth = timm_layers.DropPath(P), tv_ops.StochasticDepth(P, "row")
    path.eval()
    depth.eval()
    with portable_masks(SEED) as ctx, RaiseOnNativeRandom():
        outs = [
            path(x),
            depth(x),
            timm_layers.drop_path(x, P),  # timm's default: training=False
            tv_ops.stochastic_depth(x, P, "row", training=False),
        ]
    assert ctx.count == 0
    assert all(out is x for out in outs)


def test_p8_rate_zero_in_training_is_numbered_and_changes_nothing(timm_layers, tv_ops):
    x = _x()
    with portable_masks(SEED) as ctx, RaiseOnNativeRandom():
        a = timm_layers.DropPath(0.0)(x)
        b = tv_ops.StochasticDepth(0.0, "batch")(x)
    assert ctx.count == 2
    assert torch.equal(a, x) and torch.equal(b, x)


def test_p8_doors_keep_the_packages_checks_and_refuse_scale_by_keep_false(timm_layers, tv_ops):
    x = _x()
    with portable_masks(SEED) as ctx:
        with pytest.raises(ValueError, match="drop probability has to be between 0 and 1"):
            tv_ops.stochastic_depth(x, 1.5, "row")
        with pytest.raises(ValueError, match="mode has to be either 'batch' or 'row'"):
            tv_ops.stochastic_depth(x, P, "col")
        with pytest.raises(NotImplementedError, match=r"scale_by_keep=False.*SPEC P8"):
            timm_layers.drop_path(x, P, training=True, scale_by_keep=False)
        with pytest.raises(ValueError, match=r"1\.5"):  # our D1 check names the rate
            timm_layers.drop_path(x, 1.5, training=True)
    # torchvision's own checks and the refusal run before numbering; our D1 check runs in
    # the site, after its number is taken (as every door's dropout_layer call).
    assert ctx.count == 1


def test_p8_patches_are_removed_at_exit(timm_layers, tv_ops):
    drop = sys.modules["timm.layers.drop"]
    # The package's attribute is the function: the module is only in sys.modules.
    sd = sys.modules["torchvision.ops.stochastic_depth"]

    before = (drop.drop_path, timm_layers.drop_path, sd.stochastic_depth, tv_ops.stochastic_depth)
    with portable_masks(SEED):
        during = (drop.drop_path, timm_layers.drop_path, sd.stochastic_depth,
                  tv_ops.stochastic_depth)  # fmt: skip
    after = (drop.drop_path, timm_layers.drop_path, sd.stochastic_depth, tv_ops.stochastic_depth)
    assert after == before
    assert all(d is not b for d, b in zip(during, before, strict=True))
    assert during[0] is during[1] and during[2] is during[3]


def test_p8_timm_model_gets_portable_masks(timm_layers):
    """A small timm-style residual model: every DropPath is a site, in call order."""
    nn = torch.nn

    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(5, 5, dtype=torch.float64)
            self.drop_path = timm_layers.DropPath(P)

        def forward(self, x):
            return x + self.drop_path(self.fc(x))

    torch.manual_seed(0)
    model = nn.Sequential(Block(), Block())
    x = _x((8, 5))
    with portable_masks(SEED) as ctx, RaiseOnNativeRandom():
        out = model(x)
    with torch.no_grad():
        h = x.numpy()
        for j, block in enumerate(model):
            branch = block.fc(torch.from_numpy(h)).numpy()
            h = h + oracle.drop_path(branch, P, seed=SEED, offset=site_offset(j))
    assert ctx.count == 2
    np.testing.assert_allclose(out.detach().numpy(), h, rtol=1e-12, atol=1e-12)


def test_p8_compiled_model_with_drop_path_gets_portable_masks(timm_layers, tv_ops):
    """``torch.compile`` (eager backend): the patched functions still run as sites."""
    torch.manual_seed(0)
    lin = torch.nn.Linear(5, 5, dtype=torch.float64)
    model = torch.nn.Sequential(lin, timm_layers.DropPath(P), tv_ops.StochasticDepth(P, "row"))
    compiled = torch.compile(model, backend="eager")
    x = _x((8, 5))
    with portable_masks(SEED) as ctx, RaiseOnNativeRandom():
        out = compiled(x)
    with torch.no_grad():
        h = lin(x).numpy()
    for j in range(2):
        h = oracle.drop_path(h, P, seed=SEED, offset=site_offset(j))
    assert ctx.count == 2
    np.testing.assert_array_equal(out.detach().numpy(), h)


def test_v1_native_audit_rows_appear_in_the_torch_report(timm_layers, tv_ops):
    """The torch worker, as ``dropout-ref report`` runs it, reports the four rows."""
    from dropout_ref.conformance.natives.stochastic_depth import (
        DROP_PATH_NOISE_SHAPE,
        TIMM_NAMES,
        TORCHVISION_NAMES,
    )
    from dropout_ref.conformance.worker import DROP_PATH_NOISE_SHAPE as OURS

    assert DROP_PATH_NOISE_SHAPE == OURS  # the natives are checked as our drop_path is
    reports = worker_reports("torch", "--clauses", "D2", "D12")
    for name in (*TIMM_NAMES, *TORCHVISION_NAMES):
        assert name in reports, sorted(reports)
        assert reports[name]["kind"] == "native"
        results = reports[name]["report"]["results"]
        assert results["D12"]["status"] == "pass", results["D12"]
        assert results["D2"]["status"] == "pass", results["D2"]


def test_p8_keras_cv_drop_path_is_a_site_and_stochastic_depth_refused():
    """KerasCV on the Keras backend of this process (skips where keras_cv is absent)."""
    keras = _package("keras", "Keras 3 is in the numpy-2 environment")
    keras_cv = _package("keras_cv", "no project environment holds KerasCV (docs/drop-family.md)")
    backend = keras.backend.backend()
    context = importlib.import_module(f"dropout_ref.{backend}").portable_masks
    x = np.random.default_rng(0).normal(size=(8, 3, 4)).astype(np.float32)
    X = keras.ops.convert_to_tensor(x)
    with context(SEED) as ctx:
        out = keras.ops.convert_to_numpy(keras_cv.layers.DropPath(P)(X, training=True))
        same = keras.ops.convert_to_numpy(keras_cv.layers.DropPath(P)(X))
        with pytest.raises(NotImplementedError, match="StochasticDepth"):
            keras_cv.layers.StochasticDepth(P)([X, X], training=True)
    assert ctx.count == 1
    np.testing.assert_array_equal(out, oracle.drop_path(x, P, seed=SEED, offset=0))
    np.testing.assert_array_equal(same, x)
