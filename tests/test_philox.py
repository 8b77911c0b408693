"""The Philox4x32-10 generator itself (SPEC P3) and the seed/offset checks (P1, P3, P4).

Known-answer vectors: Random123's ``kat_vectors`` for ``philox4x32_10``, as
reproduced in TensorFlow's own test of its Philox generator
(``stateful_random_ops_test.py``, citing Random123-Boost ``test_philox.cpp``).
"""

from __future__ import annotations

import importlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dropout_ref.core.philox import (
    MASK32,
    ComplementProducts,
    HalfWordProducts,
    NumpyIntOps,
    Uint32Products,
    key_schedule,
    numpy_philox4x32_10,
    numpy_words,
)

#: (counter words, key words, output words) of Random123's kat_vectors for philox4x32_10.
KAT_VECTORS = [
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((MASK32,) * 4, (MASK32,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    (
        (0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344),
        (0xA4093822, 0x299F31D0),
        (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1),
    ),
]


def philox_module(backend):
    """The backend's ``philox`` module (``keep_mask``, ``philox4x32_10``, ``INT_OPS``)."""
    return importlib.import_module(f"dropout_ref.{backend.ops.name}.philox")


@pytest.mark.parametrize(("counter", "key", "expected"), KAT_VECTORS)
def test_p3_known_answers_numpy_core(counter, key, expected):
    """P3: the NumPy implementation reproduces Random123's known-answer vectors."""
    assert numpy_philox4x32_10(counter, key).tolist() == list(expected)


def test_p3_known_answers_every_backend(backend):
    """P3: every backend's own-ops generator reproduces the known-answer vectors, all at once."""
    counters = np.array([kat[0] for kat in KAT_VECTORS], dtype=np.int64).T  # (4, 3)
    for column, (_, key, expected) in enumerate(KAT_VECTORS):
        out = philox_module(backend).philox4x32_10(counters[:, column : column + 1], key)
        assert out.dtype == np.uint32
        assert out[:, 0].tolist() == list(expected)


def v2_reference_words(seed, offset, size):
    """Layout v2 spelled out element by element: word g % 4 of the block at counter g // 4."""
    key = [seed & MASK32, seed >> 32]
    words = []
    for g in range(offset, offset + size):
        block, lane = divmod(g, 4)
        block_out = numpy_philox4x32_10([block & MASK32, block >> 32, 0, 0], key)
        words.append(int(block_out[lane]))
    return words


#: (offset, size): offsets at every lane, block counters crossing into c1, the last counters.
LAYOUT_CASES = [
    (0, 9),
    (1, 4),
    (2, 7),
    (3, 1),
    (4 * (2**32 - 1) + 1, 10),  # blocks 2**32 - 1, 2**32, 2**32 + 1: c1 goes 0 -> 1
    (4 * 2**32 - 2, 5),
    (2**64 - 7, 7),
]


@pytest.mark.parametrize(("offset", "size"), LAYOUT_CASES)
def test_p3_layout_v2_word_g_mod_4_of_block_g_div_4(backend, offset, size):
    """P3 layout v2: element i reads word g % 4 of block g // 4 (g = offset + i), c = (lo, hi)."""
    seed = 0x0123456789ABCDEF
    expected = v2_reference_words(seed, offset, size)
    assert numpy_words((size,), seed, offset).tolist() == expected
    # The same words through each backend's generator, as a keep mask at every threshold.
    module = philox_module(backend)
    x = backend.arrays.from_numpy(np.zeros(size, np.float32))
    for w in expected:
        for threshold in (w, w + 1):
            keep = backend.arrays.to_numpy(module.keep_mask(x, threshold, seed, offset))
            assert keep.tolist() == [e >= threshold for e in expected]


def test_p3_layout_v2_computes_a_quarter_block_per_element():
    """P3 layout v2: a call of n elements evaluates ceil((offset % 4 + n) / 4) blocks."""
    from dropout_ref.core.philox import block_span

    assert block_span(0, 16) == (0, 0, 4)
    assert block_span(3, 1) == (0, 3, 1)
    assert block_span(3, 2) == (0, 3, 2)
    assert block_span(4 * 2**32 + 5, 0) == (2**32 + 1, 1, 1)
    assert block_span(2**64, 0) == (2**62, 0, 0)


def test_p3_key_schedule_bumps_by_weyl_constants():
    """P3: round keys are the key plus r * (0x9E3779B9, 0xBB67AE85) mod 2**32, r = 0..9."""
    schedule = key_schedule((MASK32, 1))
    assert len(schedule) == 10
    assert schedule[0] == (MASK32, 1)
    assert schedule[1] == ((MASK32 + 0x9E3779B9) & MASK32, 1 + 0xBB67AE85)
    assert schedule[9] == ((MASK32 + 9 * 0x9E3779B9) & MASK32, (1 + 9 * 0xBB67AE85) & MASK32)


class _Int64HalfWords(HalfWordProducts, NumpyIntOps):
    """The generic half-word products on signed int64 NumPy arrays, as torch/tf/mxnet use them."""

    mulhilo = HalfWordProducts.mulhilo
    mulhi = HalfWordProducts.mulhi

    @staticmethod
    def _u(b):
        return np.int64(b) if isinstance(b, int) else b

    def mul(self, a, m):
        return a * np.int64(m)

    def and_(self, a, mask):
        return a & np.int64(mask)

    def shr(self, a, bits):
        return a >> np.int64(bits)

    def shl(self, a, bits):
        return a << np.int64(bits)


EDGE_WORDS = [0, 1, 0xFFFF, 0x10000, 0x1FFFF, 0x7FFFFFFF, 0x80000000, MASK32]


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.integers(0, MASK32), min_size=1, max_size=20),
    st.sampled_from([0xD2511F53, 0xCD9E8D57, MASK32, 1, 0]) | st.integers(0, MASK32),
)
def test_p3_half_word_products_are_exact(xs, m):
    """P3: the 16-bit-half product (no int64 overflow anywhere) equals the exact 64-bit product."""
    xs = xs + EDGE_WORDS
    ops = _Int64HalfWords()
    hi, lo = ops.mulhilo(np.array(xs, dtype=np.int64), m)
    assert hi.tolist() == [(x * m) >> 32 for x in xs]
    assert lo.tolist() == [(x * m) & MASK32 for x in xs]
    assert ops.mulhi(np.array(xs, dtype=np.int64), m).tolist() == hi.tolist()


class _Int64Complement(ComplementProducts, _Int64HalfWords):
    """The one-multiply complement products on signed int64 NumPy arrays (torch/tf use them)."""

    mulhilo = ComplementProducts.mulhilo
    mulhi = ComplementProducts.mulhi


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.integers(0, MASK32), min_size=1, max_size=20),
    st.sampled_from([0xD2511F53, 0xCD9E8D57, MASK32, 2**31, 2**31 - 1, 1, 0])
    | st.integers(0, MASK32),
)
def test_p3_complement_products_are_exact_without_overflow(xs, m):
    """P3: one int64 product by m - 2**32 gives the exact 64-bit product, and never overflows."""
    xs = xs + EDGE_WORDS
    with np.errstate(over="raise"):
        ops = _Int64Complement()
        hi, lo = ops.mulhilo(np.array(xs, dtype=np.int64), m)
        assert ops.mulhi(np.array(xs, dtype=np.int64), m).tolist() == hi.tolist()
    assert hi.tolist() == [(x * m) >> 32 for x in xs]
    assert lo.tolist() == [(x * m) & MASK32 for x in xs]
    # The signed product's magnitude bound that rules out overflow (UB in compiled C++).
    assert max(abs(x * (m - 2**32 if m >= 2**31 else m)) for x in xs) < 2**63


def _backend_int64(backend, values):
    """``values`` as the backend's own int64 array (the word type its ``INT_OPS`` act on)."""
    name = backend.ops.name
    if name == "numpy":
        return values.astype(np.uint64)
    if name == "torch":
        return importlib.import_module("torch").from_numpy(values)
    if name == "tensorflow":
        return importlib.import_module("tensorflow").constant(values)
    if name == "array_api":  # int64 words in the bridge's namespace (array_api_strict)
        return backend.arrays.xp.asarray(values)
    if name == "jax":  # 32-bit words: JAX without jax_enable_x64 has no 64-bit integers
        return importlib.import_module("jax.numpy").asarray(values.astype(np.uint32))
    return importlib.import_module("dropout_ref.mxnet.framework").mnp.array(values, dtype="int64")


def _as_list(words):
    for to_numpy in ("asnumpy", "numpy"):
        if hasattr(words, to_numpy):
            words = getattr(words, to_numpy)()
            break
    return [int(w) for w in np.asarray(words).ravel()]


def test_p3_backend_products_are_exact_at_edge_words(backend):
    """P3: the backend's own mulhilo/mulhi (signed shifts, two's complement) are exact."""
    ops = philox_module(backend).INT_OPS
    xs = np.array([*EDGE_WORDS, 0xDEADBEEF, 0x12345678], dtype=np.int64)
    for m in (0xD2511F53, 0xCD9E8D57, MASK32, 2**31, 0x7FFFFFFF):
        hi, lo = ops.mulhilo(_backend_int64(backend, xs), m)
        expected = [int(x) * m for x in xs]
        assert _as_list(hi) == [e >> 32 for e in expected], (backend, m)
        assert _as_list(lo) == [e & MASK32 for e in expected], (backend, m)


def test_p3_raw_generator_rejects_bad_words():
    """P3: raw counter/key words outside [0, 2**32) raise ValueError naming the argument."""
    with pytest.raises(ValueError, match="counter_words"):
        numpy_philox4x32_10([0, 0, 0], [0, 0])
    with pytest.raises(ValueError, match="counter_words"):
        numpy_philox4x32_10([0, 0, 0, 2**32], [0, 0])
    with pytest.raises(ValueError, match="counter_words"):
        numpy_philox4x32_10([0, 0, 0, -1], [0, 0])
    with pytest.raises(ValueError, match="key_words"):
        numpy_philox4x32_10([0, 0, 0, 0], [0, 2**32])


@pytest.mark.parametrize(
    ("kwargs", "error", "named"),
    [
        ({"seed": -1}, ValueError, "seed"),
        ({"seed": 2**64}, ValueError, "seed"),
        ({"seed": 1.5}, TypeError, "seed"),
        ({"seed": True}, TypeError, "seed"),
        ({"seed": "7"}, TypeError, "seed"),
        ({"seed": 1, "offset": -1}, ValueError, "offset"),
        ({"seed": 1, "offset": 1.5}, TypeError, "offset"),
        ({"seed": 1, "offset": 2**64 - 5}, ValueError, "offset"),  # 6 elements: counter overflow
    ],
)
def test_p1_bad_seed_or_offset_raises_naming_it(backend, kwargs, error, named):
    """P1/P3/P4: a bad seed or offset raises a clear error naming the argument and the value."""
    x = backend.arrays.from_numpy(np.ones((2, 3), np.float32))
    with pytest.raises(error, match=named) as info:
        backend.dropout_layer(x, 0.5, **kwargs)
    bad = kwargs.get("offset", kwargs["seed"]) if named == "offset" else kwargs["seed"]
    assert repr(bad) in str(info.value) or str(bad) in str(info.value)


def test_p4_last_counter_is_accepted(backend):
    """P4: counters up to 2**64 - 1 are valid: offset = 2**64 - size works in every backend."""
    x = backend.arrays.from_numpy(np.ones((2, 3), np.float32))
    out = backend.arrays.to_numpy(backend.dropout_layer(x, 0.5, seed=3, offset=2**64 - 6))
    expected = numpy_words((2, 3), 3, 2**64 - 6) >= 2**31
    assert ((out != 0) == expected).all()


def test_p3_counter_words_accept_empty_arrays():
    """Empty counter arrays are valid (no elements to check), not a crash in min()."""
    from dropout_ref.core.philox import as_counter_words

    words = as_counter_words([np.zeros(0, np.uint32)] * 4)
    assert all(w.size == 0 for w in words)


def test_p3_key_words_refuse_floats():
    """A float key word is a TypeError naming it, not silently truncated."""
    from dropout_ref.core.philox import as_key_words

    with pytest.raises(TypeError, match=r"key word 1\.5"):
        as_key_words((1.5, 0))


@pytest.mark.parametrize(("offset", "size"), [*LAYOUT_CASES, (5, 1000)])
@pytest.mark.parametrize("seed", [0, 0x0123456789ABCDEF, 2**64 - 1])
def test_p3_tensorflow_stateless_kernel_is_an_independent_oracle(offset, size, seed):
    """P3: TensorFlow's own Philox kernel gives the same words (independent implementation).

    ``StatelessRandomUniformFullIntV2(key=[seed], counter=[offset // 4, 0], alg=1)``
    (alg 1 = Philox) emits the four words of each block in order, from block
    ``offset // 4``; skipping the first ``offset % 4`` gives layout v2's words.
    """
    tf = pytest.importorskip("tensorflow")
    lane = offset % 4
    words = tf.raw_ops.StatelessRandomUniformFullIntV2(
        shape=[lane + size],
        key=tf.constant([seed], tf.uint64),
        counter=tf.constant([offset // 4, 0], tf.uint64),
        alg=1,
        dtype=tf.uint32,
    ).numpy()[lane:]
    np.testing.assert_array_equal(words.astype(np.uint64), numpy_words((size,), seed, offset))


class _NumpyUint32Ops(Uint32Products):
    """IntOps on NumPy ``uint32`` arrays: products wrap modulo 2**32, as in XLA without x64."""

    def add(self, a, b):
        return a + np.uint32(b)

    def mul(self, a, m):
        return a * np.uint32(m)

    def and_(self, a, mask):
        return a & np.uint32(mask)

    def shr(self, a, bits):
        return a >> np.uint32(bits)


@settings(max_examples=200, deadline=None)
@given(
    xs=st.lists(st.integers(0, MASK32), min_size=1, max_size=20),
    m=st.sampled_from([0xD2511F53, 0xCD9E8D57, MASK32, 0, 1, 2**31, 0x7FFFFFFF, 0x10001]),
)
def test_p3_uint32_products_are_exact_in_32_bit_words(xs, m):
    """P3: Uint32Products' mulhilo/mulhi from 16-bit halves equal the exact 64-bit product."""
    ops = _NumpyUint32Ops()
    x = np.array([*xs, *EDGE_WORDS], dtype=np.uint32)
    with np.errstate(over="ignore"):
        hi, lo = ops.mulhilo(x, m)
        only_hi = ops.mulhi(x, m)
    assert hi.dtype == np.uint32 and lo.dtype == np.uint32
    expected = [int(v) * m for v in x]
    assert hi.tolist() == [e >> 32 for e in expected]
    assert only_hi.tolist() == hi.tolist()
    assert lo.tolist() == [e & MASK32 for e in expected]
