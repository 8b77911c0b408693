"""Block invariance (SPEC P7): the portable mask of any rectangular block of a global array.

A block ``X_block`` of a global array of shape ``global_shape`` starts at the
multi-index ``block_start``. Its element ``j`` is the global element
``block_start + j``, whose row-major index in the global array is ``i``; its
mask is the global mask's, i.e. word ``g % 4`` of the Philox block ``g // 4``
with ``g = offset + i`` (P3). With a noise shape (D12), ``i`` is the row-major
index of the element's noise-shape element in the global noise shape.

The computation follows the block's rows (runs along its last axis, which are
contiguous in the global order): a row starting at ``g_r`` reads the Philox
blocks ``g_r // 4 .. (g_r + L - 1) // 4``. Every row computes the same number
of blocks, ``ceil((L + 3) / 4)``; their words, laid out four per block, hold the
row's words from position ``g_r % 4`` on. Rows that start at the same lane are
read with one slice, so a block costs about a quarter of a Philox evaluation
per element plus one per row, and the only host data are the rows' counters.
A block that is contiguous in the global order is just an ``offset`` (P4) and
takes the backend's usual (possibly fused) path.

Nothing here imports a framework. A backend supplies :class:`BlockArrays`.
"""

from __future__ import annotations

import abc
import math
import numbers
from dataclasses import dataclass
from typing import Any

import numpy as np

from dropout_ref.core.philox import MASK32, WORDS_PER_BLOCK, IntOps, philox4x32_10, seed_key


class BlockArrays(abc.ABC):
    """What a backend adds for block masks: index data on ``X``'s device, and a reshape.

    Part of the backend contract (:meth:`dropout_ref.core.contract.DropoutOps.block_arrays`).
    """

    #: The backend's Philox integer primitives.
    int_ops: IntOps[Any]

    @abc.abstractmethod
    def index(self, values: np.ndarray) -> Any:
        """Return the ``int64`` NumPy array ``values`` as an integer array on ``X``'s device."""

    @abc.abstractmethod
    def reshape(self, a: Any, shape: tuple[int, ...]) -> Any:
        """Return ``a`` reshaped (row-major) to ``shape``."""

    @abc.abstractmethod
    def where(self, cond: Any, a: Any, b: Any) -> Any:
        """Return ``a`` where ``cond`` else ``b`` (broadcasting), for bool or float ``a``, ``b``.

        Float ``a`` and ``b``: DropHead's per-sample divisor (SPEC V2,
        :mod:`dropout_ref.core.drop_family`).
        """

    def scalar(self, value: int) -> Any:
        """Return the threshold (below ``2**32``) as a scalar the words compare with.

        Default: the Python int. A backend whose words are 32-bit (JAX's
        ``uint32``) returns one of its own scalars.
        """
        return value


@dataclass(frozen=True)
class Block:
    """A rectangular block of a global array, in the index space of the mask.

    Attributes
    ----------
    global_shape : tuple of int
        Shape of the global mask (X's global shape, or the global noise shape).
    start : tuple of int
        Multi-index of the block's first element.
    shape : tuple of int
        The block's shape.
    """

    global_shape: tuple[int, ...]
    start: tuple[int, ...]
    shape: tuple[int, ...]

    @property
    def size(self) -> int:
        """Number of elements of the block."""
        return math.prod(self.shape)

    @property
    def global_size(self) -> int:
        """Number of elements of the global array."""
        return math.prod(self.global_shape)

    def strides(self) -> tuple[int, ...]:
        """Row-major strides of the global array, in elements."""
        strides, step = [], 1
        for n in reversed(self.global_shape):
            strides.append(step)
            step *= max(n, 1)
        return tuple(reversed(strides))

    def contiguous_offset(self) -> int | None:
        """Global row-major index of the first element if the block is one contiguous run.

        The block is one run when, after the first axis where it is longer
        than 1, it spans the global array fully.
        """
        if self.size == 0:
            return 0
        axes = [k for k, n in enumerate(self.shape) if n != 1]
        if axes and any(
            self.shape[k] != self.global_shape[k] for k in range(axes[0] + 1, len(self.shape))
        ):
            return None
        return sum(s * t for s, t in zip(self.start, self.strides(), strict=True))


def _int_tuple(value: Any, name: str) -> tuple[int, ...]:
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise TypeError(f"{name} must be a sequence of ints, got {value!r}")
    out = []
    for axis, entry in enumerate(value):
        if isinstance(entry, (bool, np.bool_)) or not isinstance(entry, numbers.Integral):
            raise TypeError(f"{name}[{axis}] must be an int, got {entry!r}")
        out.append(int(entry))
    return tuple(out)


def validate_block(
    global_shape: Any, block_start: Any, shape: tuple[int | None, ...] | None
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Check ``global_shape`` and ``block_start`` for a block of ``shape`` (SPEC P7).

    Returns
    -------
    global_shape, block_start : tuple of int

    Raises
    ------
    TypeError
        If either is not a sequence of ints.
    ValueError
        If only one of them is given, their ranks differ from X's, or the block
        does not lie inside the global array (the message names the axis).
    """
    if (global_shape is None) != (block_start is None):
        raise ValueError(
            "global_shape and block_start go together: give both (a block of a global "
            f"array) or neither, got global_shape={global_shape!r}, block_start={block_start!r}"
        )
    gshape = _int_tuple(global_shape, "global_shape")
    start = _int_tuple(block_start, "block_start")
    if shape is None or any(n is None for n in shape):
        raise ValueError("global_shape/block_start need X's static shape, which is unknown here")
    if not len(gshape) == len(start) == len(shape):
        raise ValueError(
            f"global_shape {gshape} and block_start {start} must each have one entry per axis "
            f"of X (rank {len(shape)}, shape {tuple(shape)})"
        )
    for axis, (g, s, n) in enumerate(zip(gshape, start, shape, strict=True)):
        if g < 0 or s < 0 or s + n > g:
            raise ValueError(
                f"the block does not fit the global array on axis {axis}: block_start[{axis}]={s} "
                f"+ X's size {n} must be <= global_shape[{axis}]={g} (and neither negative)"
            )
    return gshape, start


def noise_block(
    gshape: tuple[int, ...],
    start: tuple[int, ...],
    shape: tuple[int, ...],
    noise: tuple[int, ...] | None,
) -> Block:
    """Return the block of the global *mask*: X's block, or its projection on the noise shape.

    On an axis where the noise shape is 1 (shared), the mask block is one
    element wide at global index 0 (empty if X's block is empty there).
    """
    if noise is None:
        return Block(gshape, start, shape)
    mstart = tuple(s if m == g else 0 for s, m, g in zip(start, noise, gshape, strict=True))
    mshape = tuple(n if m == g else min(n, 1) for n, m, g in zip(shape, noise, gshape, strict=True))
    return Block(noise, mstart, mshape)


def row_starts(block: Block, offset: int) -> np.ndarray:
    """Global counter ``g`` of the first element of each row of the block, as ``uint64``."""
    strides = block.strides()
    lead = block.shape[:-1]
    g = np.full(
        (), offset + sum(s * t for s, t in zip(block.start, strides, strict=True)), np.uint64
    )
    for axis, n in enumerate(lead):
        step = np.arange(n, dtype=np.uint64) * np.uint64(strides[axis])
        g = np.add.outer(g, step)
    return np.asarray(g, np.uint64).reshape(-1)


def block_keep_mask(
    arrays: BlockArrays, block: Block, threshold: int, seed: int, offset: int
) -> Any:
    """Return the keep mask of ``block`` of the global portable mask (SPEC P3, P7).

    Parameters
    ----------
    arrays : BlockArrays
        The backend's index and reshape on X's device, and its integer primitives.
    block : Block
        The block, in the mask's index space (:func:`noise_block`); non-empty, rank >= 1.
    threshold : int
        ``ceil(p * 2**32)``; kept iff the word ``>= threshold``.
    seed : int
        Seed in ``[0, 2**64)``.
    offset : int
        Counter of the global array's element 0.

    Returns
    -------
    array
        Bool array of ``block.shape`` on X's device.
    """
    length = block.shape[-1]
    starts = row_starts(block, offset)
    lanes = starts % np.uint64(WORDS_PER_BLOCK)
    n_blocks = -(-(length + WORDS_PER_BLOCK - 1) // WORDS_PER_BLOCK)
    first = starts // np.uint64(WORDS_PER_BLOCK)
    low, high = first & np.uint64(MASK32), first >> np.uint64(32)
    steps = np.arange(n_blocks, dtype=np.uint64)
    if int(low.max()) + n_blocks <= 2**32:
        # No row's counters carry into the upper word (the usual case): only the rows'
        # first counters and the steps cross to the device, O(rows + blocks per row), and
        # the device adds them (c0 < 2**32 fits every backend's integer words).
        c0 = arrays.int_ops.add(
            arrays.index(low.astype(np.int64)[:, None]),
            arrays.index(steps.astype(np.int64)[None, :]),
        )
        c1: Any = (
            int(high[0])
            if (high == high[0]).all()
            else arrays.index(high.astype(np.int64)[:, None] + np.zeros((1, n_blocks), np.int64))
        )
    else:
        # A row straddles a multiple of 2**32 blocks: counters computed on the host.
        counters = np.add.outer(first, steps)
        c0 = arrays.index((counters & np.uint64(MASK32)).astype(np.int64))
        c1 = arrays.index((counters >> np.uint64(32)).astype(np.int64))
    words = philox4x32_10(arrays.int_ops, (c0, c1, 0, 0), seed_key(seed))
    # interleave takes flat words: row r's block k is flat element r * n_blocks + k, so its
    # four words land at r * 4 * n_blocks + 4 * k + lane, i.e. row r of the reshape.
    flat = [arrays.reshape(w, (len(starts) * n_blocks,)) for w in words]
    rows = arrays.reshape(
        arrays.int_ops.interleave(flat), (len(starts), WORDS_PER_BLOCK * n_blocks)
    )
    present = [int(lane) for lane in np.unique(lanes)]
    threshold = arrays.scalar(threshold)
    keep = rows[:, present[0] : present[0] + length] >= threshold
    if len(present) > 1:
        row_lane = arrays.index(lanes.astype(np.int64)[:, None])
        for lane in present[1:]:
            part = rows[:, lane : lane + length] >= threshold
            keep = arrays.where(row_lane == lane, part, keep)
    return arrays.reshape(keep, block.shape)
