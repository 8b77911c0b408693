"""Philox4x32-10, written once for every backend (SPEC P1-P4).

The generator of Salmon, Moraes, Dror and Shaw, "Parallel random numbers:
as easy as 1, 2, 3" (SC'11), as specified by Random123's ``philox4x32_10``.
The round function here is generic over :class:`IntOps`, a handful of
element-wise integer primitives; each backend's ``<backend>/philox.py``
supplies only those primitives and an ``arange`` on ``X``'s device, so the
algorithm exists in exactly one place. This module also holds the NumPy
primitives, the oracle of SPEC P2.

Word layout v2 (docs/portable-masks.md): the key is
``(seed & 0xFFFFFFFF, seed >> 32)``; the element of row-major index ``i``
has the global index ``g = offset + i`` and its random word ``w`` is output
word ``g % 4`` of the block whose counter is ``(b & 0xFFFFFFFF, b >> 32, 0, 0)``
with ``b = g // 4``: one block serves four consecutive elements. With ``u = w / 2**32`` the
element is kept iff ``u >= p``, i.e. iff ``w >= ceil(p * 2**32)``
(:func:`dropout_ref.core.thresholds.word_threshold`).

Values are 32-bit unsigned words held in 64-bit integer arrays. Products
never rely on signed overflow wrapping (undefined behaviour in C and in
compiled kernels): :class:`ComplementProducts` uses one ``int64`` product by
the negative ``m - 2**32`` (for backends whose right shift is arithmetic),
:class:`HalfWordProducts` products of 16-bit halves below ``2**50`` (for a
backend without a right shift, which may shift by an exact division).

A word is either an array or a Python ``int`` standing for the same value in
every element; rounds fold constant words in Python, which removes most of
the first round's work when the counter's upper words are constant.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any, Protocol, TypeVar

import numpy as np

#: Philox4x32 round multipliers (Random123 ``PHILOX_M4x32_0``, ``PHILOX_M4x32_1``).
M0, M1 = 0xD2511F53, 0xCD9E8D57
#: Weyl key increments (Random123 ``PHILOX_W32_0``, ``PHILOX_W32_1``).
W0, W1 = 0x9E3779B9, 0xBB67AE85
#: Number of rounds of Philox4x32-10.
ROUNDS = 10
#: Mask of a 32-bit word.
MASK32 = 0xFFFFFFFF
#: Output words of one Philox4x32 block: element ``g`` reads word ``g % 4`` of block ``g // 4``.
WORDS_PER_BLOCK = 4
#: Number of counter values: offsets and element counts live in ``[0, 2**64]``.
COUNTER_SPACE = 2**64

A = TypeVar("A")
#: A 32-bit word: an array of values, or one Python int shared by all elements.
Word = A | int


class IntOps(Protocol[A]):
    """Element-wise integer primitives on non-negative values held in 64-bit integer arrays.

    Every operand passed in is below ``2**50``; ``int`` operands are Python
    constants below ``2**32``. Implementations must be exact on that range.
    """

    def add(self, a: A, b: A | int) -> A:
        """Return ``a + b``."""

    def mul(self, a: A, m: int) -> A:
        """Return ``a * m`` (the product is below ``2**49``)."""

    def and_(self, a: A, mask: int) -> A:
        """Return ``a & mask``."""

    def xor(self, a: A, b: A | int) -> A:
        """Return ``a ^ b``."""

    def shr(self, a: A, bits: int) -> A:
        """Return ``a >> bits``, i.e. ``floor(a / 2**bits)``."""

    def shl(self, a: A, bits: int) -> A:
        """Return ``a << bits`` (the result is below ``2**50``)."""

    def mulhilo(self, a: A, m: int) -> tuple[A, A]:
        """Return the high and low 32-bit words of the 64-bit product ``a * m``."""

    def mulhi(self, a: A, m: int) -> A:
        """Return the high 32-bit word of the 64-bit product ``a * m``."""

    def interleave(self, words: Sequence[A]) -> A:
        """Return the flat array ``x0[0], x1[0], x2[0], x3[0], x0[1], ...`` of four equal arrays."""


class HalfWordProducts:
    """``mulhilo``/``mulhi`` for :class:`IntOps` from products of 16-bit halves.

    With ``x = xh * 2**16 + xl`` and a 32-bit ``m``: ``a = xl * m`` and
    ``b = xh * m`` are below ``2**48`` and ``t = b + (a >> 16)`` equals
    ``floor(x * m / 2**16)``, so ``hi = t >> 16`` and
    ``lo = ((t & 0xFFFF) << 16) + (a & 0xFFFF)``. Mix into a class that
    defines the other primitives.
    """

    def _high_part(self: Any, x: Any, m: int) -> tuple[Any, Any]:
        a = self.mul(self.and_(x, 0xFFFF), m)
        b = self.mul(self.shr(x, 16), m)
        return self.add(b, self.shr(a, 16)), a

    def mulhilo(self: Any, x: Any, m: int) -> tuple[Any, Any]:
        """Return ``(x * m) >> 32`` and ``(x * m) & 0xFFFFFFFF``."""
        t, a = self._high_part(x, m)
        lo = self.add(self.shl(self.and_(t, 0xFFFF), 16), self.and_(a, 0xFFFF))
        return self.shr(t, 16), lo

    def mulhi(self: Any, x: Any, m: int) -> Any:
        """Return ``(x * m) >> 32``."""
        t, _ = self._high_part(x, m)
        return self.shr(t, 16)


class ComplementProducts:
    """``mulhilo``/``mulhi`` for :class:`IntOps` from ONE signed 64-bit product, never overflowing.

    For ``x`` in ``[0, 2**32)`` and a multiplier ``m >= 2**31`` write
    ``x * m = x * (m - 2**32) + x * 2**32``. ``q = x * (m - 2**32)`` is
    negative with ``|q| < 2**63`` (``2**32 - m <= 2**31``), so it is exact in
    ``int64``; then ``lo = q & 0xFFFFFFFF`` (two's complement) and
    ``hi = (q >> 32) + x`` (arithmetic, i.e. flooring, right shift). For
    ``m < 2**31`` the plain product ``x * m < 2**63`` is used. 4 operations
    per ``mulhilo`` instead of the 11 of :class:`HalfWordProducts`, with no
    signed overflow (undefined behaviour in C++, which compiled kernels emit).

    Requires the backend's ``mul`` to accept a negative constant, ``and_`` to
    act on two's complement and ``shr`` to floor negative values (an
    arithmetic shift). Mix into a class that defines the other primitives.
    """

    def _product(self: Any, x: Any, m: int) -> tuple[Any, Any]:
        if m < 2**31:
            return self.mul(x, m), None
        return self.mul(x, m - 2**32), x

    def mulhilo(self: Any, x: Any, m: int) -> tuple[Any, Any]:
        """Return ``(x * m) >> 32`` and ``(x * m) & 0xFFFFFFFF``."""
        q, x_high = self._product(x, m)
        hi = self.shr(q, 32)
        return (hi if x_high is None else self.add(hi, x_high)), self.and_(q, MASK32)

    def mulhi(self: Any, x: Any, m: int) -> Any:
        """Return ``(x * m) >> 32``."""
        q, x_high = self._product(x, m)
        hi = self.shr(q, 32)
        return hi if x_high is None else self.add(hi, x_high)


class Uint32Products:
    """``mulhilo``/``mulhi`` for :class:`IntOps` on 32-bit unsigned words, never needing 64 bits.

    For a backend whose integer arrays are ``uint32`` (JAX without
    ``jax_enable_x64``) and whose ``mul`` wraps modulo ``2**32``, as unsigned
    arithmetic does in C, XLA and NumPy. ``lo`` is that wrapped product. With
    ``x = xh * 2**16 + xl`` and ``m = mh * 2**16 + ml`` the four 16x16-bit
    products are below ``2**32``; the middle column
    ``(xl*ml >> 16) + (xl*mh & 0xFFFF) + (xh*ml & 0xFFFF)`` is below ``3 * 2**16``
    and ``hi = xh*mh + (xl*mh >> 16) + (xh*ml >> 16) + (middle >> 16)``, which
    is the true high word and so below ``2**32``: no step overflows. Mix into a
    class that defines the other primitives (``mul`` wrapping modulo ``2**32``).
    """

    def _hi(self: Any, x: Any, m: int) -> Any:
        mh, ml = m >> 16, m & 0xFFFF
        xl, xh = self.and_(x, 0xFFFF), self.shr(x, 16)
        lh, hl = self.mul(xl, mh), self.mul(xh, ml)
        middle = self.add(
            self.add(self.shr(self.mul(xl, ml), 16), self.and_(lh, 0xFFFF)), self.and_(hl, 0xFFFF)
        )
        high = self.add(self.add(self.mul(xh, mh), self.shr(lh, 16)), self.shr(hl, 16))
        return self.add(high, self.shr(middle, 16))

    def mulhilo(self: Any, x: Any, m: int) -> tuple[Any, Any]:
        """Return ``(x * m) >> 32`` and ``(x * m) & 0xFFFFFFFF``."""
        return self._hi(x, m), self.mul(x, m)

    def mulhi(self: Any, x: Any, m: int) -> Any:
        """Return ``(x * m) >> 32``."""
        return self._hi(x, m)


# -- the generator, on words that may be Python ints ---------------------------------------------


def _xor(ops: IntOps[A], a: Word, b: Word) -> Word:
    if isinstance(a, int):
        return a ^ b if isinstance(b, int) else ops.xor(b, a)
    return ops.xor(a, b)


def _mulhilo(ops: IntOps[A], x: Word, m: int) -> tuple[Word, Word]:
    if isinstance(x, int):
        product = x * m
        return product >> 32, product & MASK32
    return ops.mulhilo(x, m)


def _mulhi(ops: IntOps[A], x: Word, m: int) -> Word:
    return (x * m) >> 32 if isinstance(x, int) else ops.mulhi(x, m)


def key_schedule(key: Sequence[int]) -> list[tuple[int, int]]:
    """Return the round keys of Philox4x32-10: ``key``, then bumped by ``(W0, W1)`` each round.

    Parameters
    ----------
    key : sequence of two int
        The 64-bit key as two 32-bit words ``(k0, k1)``.

    Returns
    -------
    list of tuple of int
        ``ROUNDS`` pairs of 32-bit round keys.

    """
    k0, k1 = (int(k) & MASK32 for k in key)
    return [((k0 + r * W0) & MASK32, (k1 + r * W1) & MASK32) for r in range(ROUNDS)]


def _round(ops: IntOps[A], c: tuple[Word, Word, Word, Word], k: tuple[int, int]) -> tuple:
    hi0, lo0 = _mulhilo(ops, c[0], M0)
    hi1, lo1 = _mulhilo(ops, c[2], M1)
    return (_xor(ops, _xor(ops, hi1, c[1]), k[0]), lo1, _xor(ops, _xor(ops, hi0, c[3]), k[1]), lo0)


def philox4x32_10(
    ops: IntOps[A], counter: Sequence[Word], key: Sequence[int]
) -> tuple[Word, Word, Word, Word]:
    """Apply Philox4x32-10 to counter words with a constant key.

    Parameters
    ----------
    ops : IntOps
        The backend's integer primitives.
    counter : sequence of four words
        ``(c0, c1, c2, c3)``: arrays of 32-bit values or Python ints.
    key : sequence of two int
        ``(k0, k1)``.

    Returns
    -------
    tuple of four words
        ``(x0, x1, x2, x3)``, as in Random123's ``philox4x32_10(ctr, key)``.

    """
    c = tuple(counter)
    for k in key_schedule(key):
        c = _round(ops, c, k)
    return c


def philox4x32_10_keyed(ops: IntOps[A], counter: Sequence[Word], k0: Any, k1: Any) -> tuple:
    """:func:`philox4x32_10` with the key words given as arrays (data, not constants).

    Lets a compiled kernel take the key as an input, so one compilation
    serves every key. ``k0``/``k1`` are 0-d integer arrays in ``[0, 2**32)``.
    """
    c = tuple(counter)
    for r in range(ROUNDS):
        # The round's increment reduced mod 2**32 first: exact for 64-bit words (masked
        # after the add) and for 32-bit ones (the add wraps), where r * W0 would not fit.
        k = (
            ops.and_(ops.add(k0, (r * W0) & MASK32), MASK32),
            ops.and_(ops.add(k1, (r * W1) & MASK32), MASK32),
        )
        c = _round(ops, c, k)
    return c


def seed_key(seed: int) -> tuple[int, int]:
    """Return the Philox key ``(seed & 0xFFFFFFFF, seed >> 32)`` of a 64-bit seed (P3)."""
    return seed & MASK32, (seed >> 32) & MASK32


def block_span(offset: int, size: int) -> tuple[int, int, int]:
    """Return the blocks that the elements ``offset .. offset + size - 1`` read (layout v2).

    Returns
    -------
    first_block : int
        Counter of the block holding element 0: ``offset // 4``.
    lane : int
        The output word of that block that element 0 reads: ``offset % 4``.
    n_blocks : int
        Number of consecutive blocks covering all ``size`` elements.

    """
    first_block, lane = divmod(offset, WORDS_PER_BLOCK)
    return first_block, lane, -(-(lane + size) // WORDS_PER_BLOCK)


def block_counters(
    ops: IntOps[A], block_index: A, first_block: int, n_blocks: int | None
) -> tuple[Word, Word]:
    """Return counter words ``(c0, c1)`` of blocks ``first_block + block_index`` (64-bit counters).

    ``c1`` stays a Python int (folded away) when no block of the call carries
    into the upper word, which is the case for every call of fewer than
    ``2**32`` blocks that does not straddle a multiple of ``2**32``.
    """
    low, high = first_block & MASK32, first_block >> 32
    if n_blocks is not None and low + n_blocks <= 2**32:
        return ops.add(block_index, low), high
    total = ops.add(block_index, low)
    return ops.and_(total, MASK32), ops.and_(ops.add(ops.shr(total, 32), high), MASK32)


def block_words(
    ops: IntOps[A], block_index: A, seed: int, first_block: int, n_blocks: int | None
) -> tuple[Word, Word, Word, Word]:
    """Return the four output words of the blocks ``first_block + block_index`` under ``seed``.

    Parameters
    ----------
    ops : IntOps
        The backend's integer primitives.
    block_index : array
        ``0, 1, ..., n_blocks - 1`` as a 64-bit integer array.
    seed : int
        Seed in ``[0, 2**64)``; the key is :func:`seed_key`.
    first_block : int
        Counter of block 0 (see :func:`block_span`).
    n_blocks : int or None
        Number of blocks, or ``None`` when only known at run time.

    Returns
    -------
    tuple of four arrays
        ``(x0, x1, x2, x3)`` of Philox4x32-10 at counters ``(c, 0)`` (128-bit, low word first).

    """
    c0, c1 = block_counters(ops, block_index, first_block, n_blocks)
    return philox4x32_10(ops, (c0, c1, 0, 0), seed_key(seed))


def element_words(
    ops: IntOps[A], block_index: A, seed: int, offset: int, size: Any, n_blocks: Any = None
) -> A:
    """Return the random word ``w`` of every element (SPEC P3, layout v2).

    The element of row-major index ``i`` has the global index ``g = offset + i``
    and reads output word ``g % 4`` of the block at counter ``g // 4``: each
    block serves four consecutive elements, so a call computes
    ``ceil((offset % 4 + size) / 4)`` blocks, a quarter of one block per element.

    Parameters
    ----------
    ops : IntOps
        The backend's integer primitives.
    block_index : array
        ``0, 1, ..., n_blocks - 1`` as a 64-bit integer array
        (``n_blocks`` from :func:`block_span`).
    seed : int
        Seed in ``[0, 2**64)``.
    offset : int
        Global index of element 0; ``offset + size <= 2**64``.
    size : int or array
        Number of elements (a 0-d tensor where only known at run time).
    n_blocks : int or None, optional
        Number of blocks if known statically (lets constant counter words fold away).

    Returns
    -------
    array
        The words, each in ``[0, 2**32)``, one per element, flat.

    """
    first_block, lane = divmod(offset, WORDS_PER_BLOCK)
    words = block_words(ops, block_index, seed, first_block, n_blocks)
    return ops.interleave(words)[lane : lane + size]


# -- NumPy: the oracle ---------------------------------------------------------------------------


class NumpyIntOps:
    """:class:`IntOps` on ``uint64`` arrays; NumPy multiplies 32x32 bits exactly in ``uint64``."""

    @staticmethod
    def _u(b: Any) -> Any:
        return np.uint64(b) if isinstance(b, int) else b

    def add(self, a: np.ndarray, b: Any) -> np.ndarray:
        """Return ``a + b``."""
        return a + self._u(b)

    def mul(self, a: np.ndarray, m: int) -> np.ndarray:
        """Return ``a * m``."""
        return a * np.uint64(m)

    def and_(self, a: np.ndarray, mask: int) -> np.ndarray:
        """Return ``a & mask``."""
        return a & np.uint64(mask)

    def xor(self, a: np.ndarray, b: Any) -> np.ndarray:
        """Return ``a ^ b``."""
        return a ^ self._u(b)

    def shr(self, a: np.ndarray, bits: int) -> np.ndarray:
        """Return ``a >> bits``."""
        return a >> np.uint64(bits)

    def shl(self, a: np.ndarray, bits: int) -> np.ndarray:
        """Return ``a << bits``."""
        return a << np.uint64(bits)

    def mulhilo(self, a: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray]:
        """Return the high and low words of ``a * m`` from one exact ``uint64`` product."""
        product = a * np.uint64(m)
        return product >> np.uint64(32), product & np.uint64(MASK32)

    def mulhi(self, a: np.ndarray, m: int) -> np.ndarray:
        """Return the high word of ``a * m``."""
        return (a * np.uint64(m)) >> np.uint64(32)

    def interleave(self, words: Sequence[np.ndarray]) -> np.ndarray:
        """Return the four words of each block, block after block, as one flat array."""
        return np.stack(words, axis=-1).reshape(-1)


NUMPY_OPS = NumpyIntOps()


def as_counter_words(counter_words: Any) -> list[np.ndarray]:
    """Check raw counter words and return them as four ``uint64`` arrays of equal shape.

    Parameters
    ----------
    counter_words : array_like
        Four words (leading axis of length 4), each an integer array or scalar in ``[0, 2**32)``.

    Returns
    -------
    list of numpy.ndarray
        The four words, broadcast to one shape.

    Raises
    ------
    ValueError
        If there are not four words or a value lies outside ``[0, 2**32)``.

    """
    words = [np.asarray(w) for w in counter_words]
    if len(words) != 4:
        raise ValueError(f"counter_words must hold 4 words, got {len(words)}")
    for w in words:
        if w.size == 0:
            continue  # min() of an empty array raises
        in_range = np.issubdtype(w.dtype, np.integer) and w.min() >= 0 and w.max() <= MASK32
        if not in_range:
            raise ValueError(f"counter_words must be integers in [0, 2**32), got {w!r}")
    return [w.astype(np.uint64) for w in np.broadcast_arrays(*words)]


def as_key_words(key_words: Sequence[int]) -> tuple[int, int]:
    """Check a raw key and return it as two Python ints in ``[0, 2**32)``.

    Raises
    ------
    ValueError
        If there are not two words or a word lies outside ``[0, 2**32)``.

    """
    for k in key_words:
        # int() would silently truncate a float key word.
        if isinstance(k, bool) or not isinstance(k, numbers.Integral):
            raise TypeError(f"key_words must be two integers, got key word {k!r}")
    key = [int(k) for k in key_words]
    if len(key) != 2 or not all(0 <= k <= MASK32 for k in key):
        raise ValueError(f"key_words must be two integers in [0, 2**32), got {key_words!r}")
    return key[0], key[1]


def numpy_philox4x32_10(counter_words: Any, key_words: Sequence[int]) -> np.ndarray:
    """Random123's ``philox4x32_10(ctr, key)`` in NumPy (the P3 known-answer check).

    Parameters
    ----------
    counter_words : array_like
        Four counter words, each an integer array or scalar in ``[0, 2**32)``.
    key_words : sequence of two int
        ``(k0, k1)``.

    Returns
    -------
    numpy.ndarray
        ``uint32`` array of shape ``(4, *word_shape)``: the output words.

    """
    words = philox4x32_10(NUMPY_OPS, as_counter_words(counter_words), as_key_words(key_words))
    return np.stack([np.asarray(w) for w in words]).astype(np.uint32)


def numpy_words(shape: tuple[int, ...], seed: int, offset: int) -> np.ndarray:
    """Return the random word of every element of an array of ``shape`` (P3), as ``uint64``."""
    size = int(np.prod(shape, dtype=np.int64))
    _, _, n_blocks = block_span(offset, size)
    index = np.arange(n_blocks, dtype=np.uint64)
    words = element_words(NUMPY_OPS, index, seed, offset, size, n_blocks)
    return np.asarray(words).reshape(shape)


def numpy_keep_mask(shape: tuple[int, ...], threshold: int, seed: int, offset: int) -> np.ndarray:
    """Return the portable keep mask of an array of ``shape`` (SPEC P): ``w >= threshold``.

    Parameters
    ----------
    shape : tuple of int
        Shape of ``X``.
    threshold : int
        ``ceil(p * 2**32)`` in ``[1, 2**32]`` (:func:`dropout_ref.core.thresholds.word_threshold`).
    seed : int
        Seed in ``[0, 2**64)``.
    offset : int
        Counter of element 0.

    Returns
    -------
    numpy.ndarray
        Bool array of ``shape``.

    """
    # Python int comparison: 2**32 ("drop all") does not fit uint32 but does fit uint64.
    return numpy_words(shape, seed, offset) >= np.uint64(threshold)
