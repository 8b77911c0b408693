"""SPEC V1 (DropPath) and V2 (DropHead) in every backend.

The expected masks come from the Philox oracle of ``dropout_ref.core.philox``
(``numpy_keep_mask``) at the noise shape, not from the function under test.
Random checks run at a false-alarm probability of ``ALPHA`` each, with exact
binomial bounds from :mod:`dropout_ref.conformance.stats`.
"""

from __future__ import annotations

import socket

import numpy as np
import pytest

from dropout_ref.conformance.stats import binomial_count_interval
from dropout_ref.core.contract import NotApplicable
from dropout_ref.core.philox import numpy_keep_mask
from dropout_ref.core.thresholds import word_threshold

ALPHA = 1e-6
SEED, OFFSET = 2**33 + 5, 7


def values(shape, seed=0):
    """Non-zero values, so an output 0 means "dropped"."""
    rng = np.random.default_rng(seed)
    return rng.uniform(0.5, 2.0, size=shape) * rng.choice([-1.0, 1.0], size=shape)


def family(backend):
    """``(drop_path, drop_head)`` of ``backend``; JAX's seed=None calls take the kit's keys."""
    module = backend.registration.module
    if backend.name != "jax":
        return module.drop_path, module.drop_head
    from dropout_ref.jax.keys import KEYS

    def keyed(fn):
        def call(X, p, **kwargs):
            if kwargs.get("seed") is None and "key" not in kwargs:
                kwargs["key"] = KEYS.next()
            return fn(X, p, **kwargs)

        return call

    return keyed(module.drop_path), keyed(module.drop_head)


def widest(backend, x):
    """``x`` rounded to the backend's widest float (JAX without x64: float32), its name and eps."""
    dtype = "float64" if "float64" in backend.arrays.float_dtypes else "float32"
    return x.astype(dtype).astype(np.float64), dtype, float(np.finfo(dtype).eps)


def run(backend, fn, x, p, dtype="float32", **kwargs):
    X = backend.arrays.from_numpy(x, dtype)
    return backend.arrays.to_numpy(fn(X, p, **kwargs))


def oracle_keep(noise_shape, p, seed=SEED, offset=OFFSET):
    """The portable keep decisions at ``noise_shape`` (P3 counters over it, row-major, D12)."""
    return numpy_keep_mask(tuple(noise_shape), word_threshold(p), seed, offset)


# -- V1 DropPath ----------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(8, 3, 5), (5,), (16, 2, 2, 3)])
def test_v1_row_mode_one_decision_per_sample_from_the_oracle(backend, shape):
    """V1 + P2: sample b is kept iff Philox counter offset + b keeps it; kept = X / (1 - p)."""
    drop_path, _ = family(backend)
    x, dtype, eps = widest(backend, values(shape))
    p = 0.4
    out = run(backend, drop_path, x, p, dtype=dtype, seed=SEED, offset=OFFSET)
    keep = oracle_keep((shape[0],), p).reshape((shape[0],) + (1,) * (len(shape) - 1))
    expected = np.where(keep, x / (1 - p), 0.0)
    np.testing.assert_allclose(out, expected, rtol=eps, atol=0)  # D5: 1 ulp
    assert 0 < keep.sum() < shape[0] or shape[0] < 6  # both outcomes seen on larger batches


def test_v1_batch_mode_one_decision_for_the_call(backend):
    """V1 mode="batch": the whole call follows counter ``offset`` (noise shape all ones)."""
    drop_path, _ = family(backend)
    x = values((6, 4))
    p = 0.5
    for offset in range(12):
        out = run(backend, drop_path, x, p, seed=SEED, offset=offset, mode="batch")
        kept = bool(oracle_keep((1,), p, offset=offset)[0])
        np.testing.assert_array_equal(out != 0, np.full(x.shape, kept))


def test_v1_equals_dropout_layer_with_its_noise_shape(backend):
    """V1: drop_path is dropout_layer with noise shape (B, 1, ..., 1), bit for bit."""
    drop_path, _ = family(backend)
    x = values((9, 4, 3))
    out = run(backend, drop_path, x, 0.3, seed=SEED, offset=OFFSET)
    X = backend.arrays.from_numpy(x, "float32")
    ref = backend.arrays.to_numpy(
        backend.registration.dropout_layer(X, 0.3, seed=SEED, offset=OFFSET, noise_shape=(9, 1, 1))
    )
    np.testing.assert_array_equal(out, ref)


@pytest.mark.parametrize("ranks", [2, 4])
def test_v1_data_parallel_split_reproduces_the_single_process_mask(backend, ranks):
    """V1 + P7: rank r holding rows [r*b, (r+1)*b) drops what one process drops, two ways."""
    drop_path, _ = family(backend)
    b = 3
    x = values((ranks * b, 5, 2))
    full = run(backend, drop_path, x, 0.5, seed=SEED, offset=OFFSET)
    blocks, offsets = [], []
    for r in range(ranks):
        rows = x[r * b : (r + 1) * b]
        blocks.append(
            run(backend, drop_path, rows, 0.5, seed=SEED, offset=OFFSET,
                global_shape=x.shape, block_start=(r * b, 0, 0))
        )  # fmt: skip
        # Row mode counts samples: the equivalent offset of rank r is r * b.
        offsets.append(run(backend, drop_path, rows, 0.5, seed=SEED, offset=OFFSET + r * b))
    np.testing.assert_array_equal(np.concatenate(blocks), full)
    np.testing.assert_array_equal(np.concatenate(offsets), full)


def test_v1_default_mode_fresh_masks_and_framework_seeding(backend):
    """D9 for V1: seeding the framework repeats a mask; the next call draws a fresh one."""
    drop_path, _ = family(backend)
    x = values((64, 3))
    backend.arrays.seed_global(11)
    first = run(backend, drop_path, x, 0.5)
    second = run(backend, drop_path, x, 0.5)
    backend.arrays.seed_global(11)
    again = run(backend, drop_path, x, 0.5)
    np.testing.assert_array_equal(first, again)
    # Equal 64-sample masks by chance: probability 2**-64.
    assert not np.array_equal(first != 0, second != 0)
    for out in (first, second):
        keep = out[:, 0] != 0
        assert ((out != 0) == keep[:, None]).all()  # one decision per sample


@pytest.mark.parametrize("mode", ["row", "batch"])
def test_v1_keep_rate_and_expectation(backend, mode):
    """D4/D10 for V1: kept decisions ~ Binomial(n, 1 - p), false-alarm probability ALPHA."""
    drop_path, _ = family(backend)
    p, rows = 0.3, 4000
    x = np.ones((rows, 2))
    if mode == "row":
        out = run(backend, drop_path, x, p)
        kept = int((out[:, 0] != 0).sum())
        n = rows
    else:
        n = 600
        kept = sum(
            int(run(backend, drop_path, x[:2], p, mode="batch")[0, 0] != 0) for _ in range(n)
        )
    interval = binomial_count_interval(n, 1 - p, ALPHA)
    assert kept in interval, f"{kept} kept of {n}, outside {interval}"


def test_v1_edge_rates_nan_and_purity(backend):
    """D2 (p=0 gives X's values), D3 (p=1 zeros, no NaN), D6 (dropped NaN is +0.0), D11."""
    drop_path, _ = family(backend)
    x = values((6, 3))
    x[0, 0] = np.nan
    x[1, 1] = np.inf
    X = backend.arrays.from_numpy(x, "float32")
    np.testing.assert_array_equal(
        backend.arrays.to_numpy(drop_path(X, 0.0, seed=1)), x.astype(np.float32)
    )
    zeros = backend.arrays.to_numpy(drop_path(X, 1.0, seed=1))
    assert (zeros == 0).all() and not np.signbit(zeros).any()
    out = backend.arrays.to_numpy(drop_path(X, 0.5, seed=SEED))
    dropped = out[:, 1] == 0
    assert not np.signbit(out[dropped]).any() and not np.isnan(out[dropped]).any()
    np.testing.assert_array_equal(backend.arrays.to_numpy(X), x.astype(np.float32))  # D11


@pytest.mark.parametrize("dtype", ["float16", "float64"])
def test_v1_dtype_and_shape_kept(backend, dtype):
    """D7 for V1: the output has X's shape and dtype."""
    if dtype not in backend.arrays.float_dtypes:
        pytest.skip(f"{backend.name} has no {dtype}")
    drop_path, drop_head = family(backend)
    x = values((4, 3, 2))
    X = backend.arrays.from_numpy(x, dtype)
    for out in (drop_path(X, 0.5, seed=3), drop_head(X, 0.5, seed=3)):
        assert backend.arrays.dtype_name(out) == dtype
        assert backend.arrays.to_numpy(out).shape == x.shape


def test_v1_gradient_uses_the_forward_mask(autodiff_backend):
    """D8 for V1: d sum(out * G) / dX = keep * G / (1 - p)."""
    backend = autodiff_backend
    drop_path, _ = family(backend)
    x = values((10, 3))
    g = values((10, 3), seed=1)
    X = backend.arrays.from_numpy(x, "float32")
    try:
        _, grad = backend.arrays.value_and_grad(
            lambda v: drop_path(v, 0.4, seed=SEED), X, g.astype(np.float32)
        )
    except NotApplicable as exc:  # pragma: no cover - the fixture skips these already
        pytest.skip(str(exc))
    keep = np.broadcast_to(oracle_keep((10,), 0.4, offset=0)[:, None], x.shape)
    np.testing.assert_allclose(grad, np.where(keep, g / 0.6, 0.0), rtol=1e-6)
    assert (grad[~keep] == 0).all()


# -- V2 DropHead ----------------------------------------------------------------------------


def kept_oracle(x, p, head_axis=1, seed=SEED, offset=OFFSET):
    """Zhou et al.'s rescale from the oracle's (sample, head) decisions, in float64."""
    noise = tuple(n if a in (0, head_axis) else 1 for a, n in enumerate(x.shape))
    keep = oracle_keep(noise, p, seed, offset)
    count = keep.sum(axis=head_axis, keepdims=True)
    factor = np.where(count > 0, x.shape[head_axis] / np.maximum(count, 1), 0.0)
    return np.where(keep, x * factor, 0.0), keep, count


def seed_with_an_empty_sample(shape, p):
    """A seed whose mask drops every head of some sample (and keeps some head elsewhere)."""
    for seed in range(1000):
        _, _, count = kept_oracle(np.ones(shape), p, seed=seed)
        if (count == 0).any() and (count > 0).any():
            return seed
    raise AssertionError("no seed in 1000 drops a whole sample")  # pragma: no cover


@pytest.mark.parametrize(
    "head_axis, shape", [(1, (6, 4, 3, 2)), (2, (5, 3, 4, 2)), (-1, (4, 2, 6))]
)
def test_v2_kept_rescale_matches_the_oracle(backend, head_axis, shape):
    """V2 rescale="kept": kept heads times H / (kept heads of the sample), zeros if none kept."""
    _, drop_head = family(backend)
    p = 0.7
    seed = seed_with_an_empty_sample(shape, p) if head_axis == 1 else SEED
    x, dtype, eps = widest(backend, values(shape))
    expected, keep, _ = kept_oracle(x, p, head_axis % len(shape), seed=seed)
    out = run(backend, drop_head, x, p, dtype=dtype, seed=seed, offset=OFFSET, head_axis=head_axis)
    # H / count rounded, then the product rounded: within 2 ulp.
    np.testing.assert_allclose(out, expected, rtol=2 * eps, atol=0)
    np.testing.assert_array_equal(out != 0, np.broadcast_to(keep, shape))


def test_v2_rate_rescale_is_noise_shape_dropout(backend):
    """V2 rescale="rate": dropout_layer's mask at (B, H, 1, ...), kept heads times 1/(1-p)."""
    _, drop_head = family(backend)
    x = values((5, 4, 3))
    out = run(backend, drop_head, x, 0.25, seed=SEED, offset=OFFSET, rescale="rate")
    X = backend.arrays.from_numpy(x, "float32")
    ref = backend.registration.dropout_layer(
        X, 0.25, seed=SEED, offset=OFFSET, noise_shape=(5, 4, 1)
    )
    np.testing.assert_array_equal(out, backend.arrays.to_numpy(ref))


@pytest.mark.parametrize("rescale", ["kept", "rate"])
def test_v2_batch_split_reproduces_the_whole_batch(backend, rescale):
    """V2 + P7: blocks of samples (all heads) give the whole batch's result, bit for bit."""
    _, drop_head = family(backend)
    x = values((8, 4, 3, 2))
    full = run(backend, drop_head, x, 0.5, seed=SEED, offset=OFFSET, rescale=rescale)
    parts = [
        run(backend, drop_head, x[s : s + 3], 0.5, seed=SEED, offset=OFFSET, rescale=rescale,
            global_shape=x.shape, block_start=(s, 0, 0, 0))
        for s in (0, 3, 6)
    ]  # fmt: skip
    np.testing.assert_array_equal(np.concatenate(parts), full)


def test_v2_head_split_works_for_rate_and_is_refused_for_kept(backend):
    """V2 + P7: heads split across ranks (tensor parallel) need rescale="rate"."""
    _, drop_head = family(backend)
    x = values((4, 6, 3))
    full = run(backend, drop_head, x, 0.5, seed=SEED, rescale="rate")
    parts = [
        run(backend, drop_head, x[:, h : h + 3], 0.5, seed=SEED, rescale="rate",
            global_shape=x.shape, block_start=(0, h, 0))
        for h in (0, 3)
    ]  # fmt: skip
    np.testing.assert_array_equal(np.concatenate(parts, axis=1), full)
    with pytest.raises(ValueError, match="head_axis"):
        run(
            backend,
            drop_head,
            x[:, :3],
            0.5,
            seed=SEED,
            global_shape=x.shape,
            block_start=(0, 0, 0),
        )


def test_v2_eval_identity_and_all_dropped(backend):
    """V2: eval (p=0) is the identity; p=1 gives +0.0 everywhere, no NaN, in both rescales."""
    _, drop_head = family(backend)
    x = values((3, 4, 2))
    x[0, 0, 0] = np.nan
    for rescale in ("kept", "rate"):
        np.testing.assert_array_equal(
            run(backend, drop_head, x, 0.0, seed=1, rescale=rescale), x.astype(np.float32)
        )
        out = run(backend, drop_head, x, 1.0, seed=1, rescale=rescale)
        assert (out == 0).all() and not np.signbit(out).any()


def test_v2_default_mode_one_mask_and_exact_rescale(backend):
    """V2 with seed=None: one draw decides, every kept head has exactly the factor H / k."""
    _, drop_head = family(backend)
    backend.arrays.seed_global(5)
    x, dtype, _ = widest(backend, np.ones((200, 4, 3)))
    out = run(backend, drop_head, x, 0.5, dtype=dtype)
    keep = out[:, :, :1] != 0
    assert ((out != 0) == keep).all()  # one decision per (sample, head)
    count = keep.sum(axis=1, keepdims=True)
    want = np.where(keep, 4.0 / np.maximum(count, 1), 0.0)
    np.testing.assert_array_equal(out, np.broadcast_to(want.astype(dtype), out.shape))
    interval = binomial_count_interval(800, 0.5, ALPHA)
    assert int(keep.sum()) in interval, f"{int(keep.sum())} heads kept of 800, outside {interval}"


def test_v2_gradient_follows_the_kept_rescale(autodiff_backend):
    """D8 for V2: d sum(out * G) / dX = keep * G * H / k, exactly 0 on dropped heads."""
    backend = autodiff_backend
    _, drop_head = family(backend)
    x = values((6, 4, 3))
    g = values((6, 4, 3), seed=2)
    x, dtype, eps = widest(backend, x)
    X = backend.arrays.from_numpy(x, dtype)
    _, grad = backend.arrays.value_and_grad(
        lambda v: drop_head(v, 0.5, seed=SEED), X, g.astype(dtype)
    )
    expected, keep, _ = kept_oracle(g.astype(dtype).astype(np.float64), 0.5, offset=0)
    np.testing.assert_allclose(grad, expected, rtol=4 * eps)
    assert (grad[~np.broadcast_to(keep, g.shape)] == 0).all()


# -- argument checks ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, error, words",
    [
        ({"p": -0.1}, ValueError, "p must satisfy"),
        ({"p": float("nan")}, ValueError, "nan"),
        ({"p": True}, TypeError, "not a bool"),
        ({"p": "0.5"}, TypeError, "'0.5'"),
        ({"mode": "sample"}, ValueError, "mode must be one of"),
        ({"head_axis": 0}, ValueError, "head_axis must not be 0"),
        ({"head_axis": 5}, ValueError, "head_axis must be in"),
        ({"head_axis": 1.0}, TypeError, "head_axis must be an integer"),
        ({"rescale": "mean"}, ValueError, "rescale must be one of"),
    ],
)
def test_v1_v2_bad_arguments_are_named(backend, kwargs, error, words):
    """D1 for V1/V2: a bad argument raises an error naming it and the value."""
    drop_path, drop_head = family(backend)
    X = backend.arrays.from_numpy(values((4, 3, 2)), "float32")
    kwargs = dict(kwargs)  # the parametrization's dict is shared by every backend
    p = kwargs.pop("p", 0.5)
    fn = drop_path if "mode" in kwargs or not kwargs else drop_head
    with pytest.raises(error, match=words):
        fn(X, p, seed=1, **kwargs)


def test_v1_v2_empty_arrays(backend):
    """D7 for V1/V2: empty batches and zero heads give empty outputs of X's shape."""
    drop_path, drop_head = family(backend)
    for shape in ((0, 3, 2), (2, 0, 2)):
        x = np.zeros(shape)
        for fn in (drop_path, drop_head):
            for seed in (None, 1):
                assert run(backend, fn, x, 0.5, seed=seed).shape == shape


def test_v1_row_mode_refuses_a_0d_array(backend):
    """V1: mode="row" needs a sample axis; mode="batch" takes a 0-d X."""
    drop_path, _ = family(backend)
    X = backend.arrays.from_numpy(np.array(2.0), "float32")
    with pytest.raises(ValueError, match="mode='row'"):
        drop_path(X, 0.5, seed=1)
    out = backend.arrays.to_numpy(drop_path(X, 0.5, seed=1, mode="batch"))
    assert out in (0.0, 4.0)


def test_v1_key_refused_outside_jax():
    """D9 as amended: only JAX takes key=; elsewhere the error says what to pass."""
    from dropout_ref.numpy import drop_path

    with pytest.raises(TypeError, match="key= is not supported by the numpy backend"):
        drop_path(np.ones((2, 2)), 0.5, key=object())


def test_v1_jax_keys_same_key_same_mask_split_keys_fresh():
    """D9 for JAX: the same key gives the same mask; split keys give fresh ones."""
    jax = pytest.importorskip("jax")
    from dropout_ref.jax import drop_path

    X = jax.numpy.ones((64, 3))
    key = jax.random.key(0)
    a, b = drop_path(X, 0.5, key=key), drop_path(X, 0.5, key=key)
    c = drop_path(X, 0.5, key=jax.random.split(key)[0])
    assert bool((a == b).all())
    assert not bool(((a != 0) == (c != 0)).all())  # equal by chance: 2**-64
    with pytest.raises(TypeError, match="key"):
        drop_path(X, 0.5)


def test_p1_portable_calls_never_touch_the_global_generator(monkeypatch):
    """P1 for V1/V2: with seed= the frameworks' generators may raise and nothing changes."""
    torch = pytest.importorskip("torch")
    from dropout_ref.numpy import drop_head as np_head
    from dropout_ref.torch import drop_head, drop_path

    def refuse(*args, **kwargs):
        raise AssertionError("a global generator was used")

    x = values((4, 3, 2))
    expected = np_head(x, 0.5, seed=SEED)
    for name in ("rand", "rand_like", "bernoulli", "randint"):
        monkeypatch.setattr(torch, name, refuse)
    monkeypatch.setattr(np.random, "random_sample", refuse)
    X = torch.tensor(x)
    np.testing.assert_array_equal(drop_head(X, 0.5, seed=SEED).numpy(), expected)
    np.testing.assert_array_equal(np_head(x, 0.5, seed=SEED), expected)
    drop_path(X, 0.5, seed=SEED)


# -- conformance rows ----------------------------------------------------------------------


def test_v1_v2_conformance_rows_pass_d1_to_d12():
    """The report's drop_path and drop_head(rescale='rate') rows: D1-D12 per group pass."""
    import io
    import json
    from contextlib import redirect_stdout

    from dropout_ref.conformance import worker
    from dropout_ref.conformance.registry import CLAUSES

    stdout = io.StringIO()
    with redirect_stdout(stdout):
        assert worker.main(["--backend", "numpy", "--clauses", *CLAUSES]) == 0
    events = [json.loads(line) for line in stdout.getvalue().splitlines()]
    reports = {
        e["report"]["implementation"]: e["report"]["results"]
        for e in events
        if e["event"] == "report"
    }
    for name in ("dropout_ref.numpy.drop_path", "dropout_ref.numpy.drop_head(rescale='rate')"):
        statuses = {clause: r["status"] for clause, r in reports[name].items()}
        assert statuses.pop("D8") == "n/a"  # numpy has no autodiff
        assert set(statuses.values()) == {"pass"}, (name, statuses)


# -- DP split across processes (torch, gloo) -----------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _dp_worker(rank: int, world: int, port: int) -> None:
    import torch

    from dropout_ref.numpy import drop_head as oracle_head
    from dropout_ref.numpy import drop_path as oracle_path
    from dropout_ref.torch import drop_head, drop_path
    from dropout_ref.torch.distributed import gloo_process_group

    with gloo_process_group(rank, world, port):
        b = 3
        x = values((world * b, 4, 5))
        rows = torch.tensor(x[rank * b : (rank + 1) * b])
        block = {"global_shape": x.shape, "block_start": (rank * b, 0, 0)}
        mine = [
            drop_path(rows, 0.5, seed=SEED, offset=OFFSET, **block),
            drop_head(rows, 0.5, seed=SEED, offset=OFFSET, **block),
        ]
        gathered = []
        for out in mine:
            parts = [torch.empty_like(out) for _ in range(world)]
            torch.distributed.all_gather(parts, out)
            gathered.append(torch.cat(parts).numpy())
        np.testing.assert_array_equal(gathered[0], oracle_path(x, 0.5, seed=SEED, offset=OFFSET))
        np.testing.assert_array_equal(gathered[1], oracle_head(x, 0.5, seed=SEED, offset=OFFSET))


@pytest.mark.one_environment
@pytest.mark.parametrize("world", [2, 4])
def test_v1_v2_gloo_ranks_reproduce_the_single_process_masks(world):
    """V1 + V2 + P7 on torch.distributed (gloo, CPU): the gathered ranks equal one process."""
    torch = pytest.importorskip("torch")
    if not torch.distributed.is_available():  # pragma: no cover
        pytest.skip("torch.distributed is not built in")
    import torch.multiprocessing as mp

    mp.spawn(_dp_worker, args=(world, _free_port()), nprocs=world, join=True)
