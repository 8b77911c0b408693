"""SPEC P7: a block of a global array, on any axes, reproduces that block of the global mask."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dropout_ref.numpy import dropout_layer as numpy_dropout_layer

GLOBAL = (5, 7, 6)
BLOCKS = [
    ((1, 2, 1), (3, 4, 5)),  # interior block, every axis cut
    ((0, 0, 0), GLOBAL),  # the whole array
    ((2, 0, 0), (2, 7, 6)),  # rows: contiguous (P4's case)
    ((0, 3, 2), (5, 1, 3)),  # a strided column
    ((4, 6, 5), (1, 1, 1)),  # the last element
    ((0, 0, 3), (5, 7, 3)),  # the last axis cut
    ((1, 1, 1), (0, 2, 2)),  # empty
]
NOISE = [None, (5, 1, 6), (1, 7, 1), (None, None, 1)]


def global_input(shape=GLOBAL):
    return np.random.default_rng(3).uniform(0.5, 2.0, size=shape).astype(np.float32)


@pytest.mark.parametrize("noise_shape", NOISE)
@pytest.mark.parametrize(("start", "shape"), BLOCKS)
def test_p7_block_reproduces_global_mask(backend, start, shape, noise_shape):
    """P7 (with and without D12's noise_shape): the block's output is the global output's block."""
    x = global_input()
    full = numpy_dropout_layer(x, 0.4, seed=2**40 + 9, offset=3, noise_shape=noise_shape)
    index = tuple(slice(s, s + n) for s, n in zip(start, shape, strict=True))
    X = backend.arrays.from_numpy(x[index], "float32")
    out = backend.dropout_layer(
        X, 0.4, seed=2**40 + 9, offset=3, noise_shape=noise_shape,
        global_shape=GLOBAL, block_start=start,
    )  # fmt: skip
    y = backend.arrays.to_numpy(out)
    np.testing.assert_array_equal(y == 0, full[index] == 0)
    np.testing.assert_allclose(y, full[index], rtol=2**-23)


@given(data=st.data())
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_p7_numpy_any_block_any_offset(data):
    """P7 property: random global shapes, blocks, noise shapes and offsets (incl. 2**32 carries)."""
    rank = data.draw(st.integers(1, 4))
    gshape = tuple(data.draw(st.lists(st.integers(1, 6), min_size=rank, max_size=rank)))
    start = tuple(data.draw(st.integers(0, g - 1)) for g in gshape)
    shape = tuple(data.draw(st.integers(1, g - s)) for g, s in zip(gshape, start, strict=True))
    noise = tuple(data.draw(st.sampled_from([None, 1])) for _ in gshape)
    offset = data.draw(st.sampled_from([0, 1, 2, 3, 2**34 - 5, 2**34 - 6, 2**63]))
    x = global_input(gshape)
    full = numpy_dropout_layer(x, 0.5, seed=77, offset=offset, noise_shape=noise)
    index = tuple(slice(s, s + n) for s, n in zip(start, shape, strict=True))
    y = numpy_dropout_layer(
        x[index], 0.5, seed=77, offset=offset, noise_shape=noise,
        global_shape=gshape, block_start=start,
    )  # fmt: skip
    np.testing.assert_array_equal(y, full[index])


@pytest.mark.parametrize(
    ("g", "offset", "columns"),
    [
        ((4, 40), 2**34 - 50, slice(3, 37)),  # block counters cross 2**32 inside row 1
        ((4, 8), 2**34 - 16, slice(0, 4)),  # rows 0-1 below 2**32 blocks, rows 2-3 above
    ],
)
def test_p7_block_mask_carries_into_the_upper_counter_word(backend, g, offset, columns):
    """P7 + P3: rows whose block counters straddle 2**32 (c1 varies inside the block)."""
    x = global_input(g)
    full = numpy_dropout_layer(x, 0.5, seed=5, offset=offset)
    X = backend.arrays.from_numpy(x[:, columns], "float32")
    y = backend.arrays.to_numpy(
        backend.dropout_layer(
            X, 0.5, seed=5, offset=offset, global_shape=g, block_start=(0, columns.start)
        )
    )
    np.testing.assert_array_equal(y == 0, full[:, columns] == 0)


def test_p7_contiguous_block_is_an_offset(backend, monkeypatch):
    """P7 = P4 for a contiguous block: it takes the usual mask path, not the row-wise one."""

    def refuse(self, X):
        raise AssertionError("row-wise block path used for a contiguous block")

    monkeypatch.setattr(type(backend.ops), "block_arrays", refuse)
    x = global_input()
    full = numpy_dropout_layer(x, 0.3, seed=1)
    X = backend.arrays.from_numpy(x[2:4], "float32")
    y = backend.arrays.to_numpy(
        backend.dropout_layer(X, 0.3, seed=1, global_shape=GLOBAL, block_start=(2, 0, 0))
    )
    np.testing.assert_array_equal(y == 0, full[2:4] == 0)
    with pytest.raises(AssertionError, match="row-wise"):  # the monkeypatch does bite
        backend.dropout_layer(
            backend.arrays.from_numpy(x[:, 1:3], "float32"), 0.3, seed=1,
            global_shape=GLOBAL, block_start=(0, 1, 0),
        )  # fmt: skip


BAD_BLOCKS = [
    (dict(global_shape=GLOBAL), ValueError, "go together"),
    (dict(block_start=(0, 0, 0)), ValueError, "go together"),
    (dict(global_shape=(5, 7), block_start=(0, 0)), ValueError, "one entry per axis"),
    (dict(global_shape=GLOBAL, block_start=(0, 5, 0)), ValueError, r"axis 1.*block_start\[1\]=5"),
    (dict(global_shape=GLOBAL, block_start=(-1, 0, 0)), ValueError, "axis 0"),
    (dict(global_shape=GLOBAL, block_start=(0, 0.0, 0)), TypeError, r"block_start\[1\]"),
    (dict(global_shape=GLOBAL, block_start=(0, 0, 0), seed=None), ValueError, "seed="),
    (
        dict(global_shape=GLOBAL, block_start=(0, 0, 0), noise_shape=(5, 3, 1)),
        ValueError,
        r"noise_shape\[1\]",
    ),
]


@pytest.mark.parametrize(("kwargs", "error", "pattern"), BAD_BLOCKS)
def test_p7_bad_block_arguments_raise(backend, kwargs, error, pattern):
    """P7: a block that does not fit, or a block without seed=, is refused with a clear message."""
    X = backend.arrays.from_numpy(global_input()[:, :3], "float32")
    kwargs = {"seed": 4, **kwargs}
    with pytest.raises(error, match=pattern):
        backend.dropout_layer(X, 0.5, **kwargs)


def test_p7_d8_gradient_of_a_block(autodiff_backend):
    """P7 + D8: the gradient of a block follows the block's (global) mask."""
    b = autodiff_backend
    x = global_input()
    full = numpy_dropout_layer(x, 0.5, seed=8, noise_shape=(5, 1, 6))
    index = (slice(1, 4), slice(2, 7), slice(0, 4))
    cot = np.random.default_rng(1).normal(size=x[index].shape).astype(np.float32)
    out, grad = b.arrays.value_and_grad(
        lambda t: b.dropout_layer(
            t, 0.5, seed=8, noise_shape=(5, 1, 6), global_shape=GLOBAL, block_start=(1, 2, 0)
        ),
        b.arrays.from_numpy(x[index], "float32"),
        cot,
    )
    keep = full[index] != 0
    np.testing.assert_array_equal(np.asarray(out) != 0, keep)
    np.testing.assert_allclose(np.asarray(grad), np.where(keep, 2.0 * cot, 0.0), rtol=1e-6)
