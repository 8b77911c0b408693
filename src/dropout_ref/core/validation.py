"""Argument checks shared by every backend (SPEC D1, D7, P1).

Every check raises an exception whose message names the argument and the
value received, so that users never see a traceback from inside a framework.
Nothing here uses ``assert``: the checks hold under ``python -O``.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

#: Floating dtypes the SPEC asks every backend to accept (D7), by canonical name.
FLOAT_DTYPES: tuple[str, ...] = ("float16", "bfloat16", "float32", "float64")

#: Largest seed accepted for portable masks: the Philox key is 64 bits (P3).
MAX_SEED = 2**64 - 1


def _describe(value: Any) -> str:
    """Return ``repr(value)`` with its type, shortened for long tensors."""
    text = repr(value)
    if len(text) > 80:
        text = text[:77] + "..."
    return f"{text} (type {type(value).__name__})"


def _scalar_from_tensor(value: Any, name: str) -> Any:
    """Unwrap a one-element array or tensor into a Python number.

    Tensors of more than one element are refused (D1); a one-element tensor is
    a scalar in all but type, and users of every framework pass them.
    """
    shape = getattr(value, "shape", None)
    if shape is None:
        return value
    try:
        size = math.prod(int(d) for d in shape)
    except TypeError as exc:  # unknown (symbolic) dimensions
        raise TypeError(
            f"{name} must be a real number in [0, 1], got a tensor of unknown shape: "
            f"{_describe(value)}"
        ) from exc
    if size != 1:
        raise TypeError(
            f"{name} must be a real number in [0, 1], got a tensor of shape "
            f"{tuple(int(d) for d in shape)}: {_describe(value)}"
        )
    dtype_text = str(getattr(value, "dtype", "")).lower()
    if "bool" in dtype_text:
        raise TypeError(f"{name} must be a real number in [0, 1], not a bool: {_describe(value)}")
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "numpy"):  # TensorFlow eager tensors have no .item()
        return np.asarray(value.numpy()).reshape(()).item()
    return np.asarray(value).reshape(()).item()


def integer_from_tensor(value: Any, name: str) -> Any:
    """Unwrap a concrete 0-d integer array or tensor (an eager seed or offset) into a Python int.

    Compiled steps pass seeds as 0-d integer tensors (SPEC S2); called eagerly,
    the same step hands over concrete ones, which mean their value. Anything
    else (floats, bools, larger tensors) is returned unchanged for the caller
    to refuse.
    """
    shape = getattr(value, "shape", None)
    if shape is None or isinstance(value, np.generic):
        return value
    try:
        dims = tuple(shape)
    except TypeError:  # unknown rank
        return value
    if dims != () or not _is_integer_dtype(value):
        return value
    return int(_scalar_from_tensor(value, name))


def _is_integer_dtype(value: Any) -> bool:
    text = str(getattr(value, "dtype", "")).lower()
    return "int" in text and "bool" not in text


def validate_rate(dropout: Any, name: str = "dropout") -> float:
    """Check a drop probability and return it as a Python float (SPEC D1).

    Parameters
    ----------
    dropout : float
        Probability of dropping an element: a real number with
        ``0 <= dropout <= 1``. A one-element array or tensor is accepted.
    name : str, optional
        The argument's name, used in error messages.

    Returns
    -------
    float
        The rate as a Python float.

    Raises
    ------
    TypeError
        If ``dropout`` is not a real number (bool, str, None, complex, or a
        tensor with more than one element).
    ValueError
        If ``dropout`` is NaN, infinite, negative or greater than 1.
    """
    if isinstance(dropout, (bool, np.bool_)):
        raise TypeError(f"{name} must be a real number in [0, 1], not a bool: {_describe(dropout)}")
    value = _scalar_from_tensor(dropout, name)
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number in [0, 1], got {_describe(dropout)}")
    rate = float(value)
    if not (0.0 <= rate <= 1.0):  # also false for NaN
        raise ValueError(f"{name} must satisfy 0 <= {name} <= 1, got {value!r}")
    return rate


def validate_seed(seed: Any, name: str = "seed") -> int | None:
    """Check a portable-mask seed: ``None`` or an integer in ``[0, 2**64)`` (SPEC P1, P3).

    Parameters
    ----------
    seed : int or None
        ``None`` selects the framework's global generator (D9); an integer
        selects the stateless Philox generator.
    name : str, optional
        The argument's name, used in error messages.

    Returns
    -------
    int or None
        The seed as a Python int, or ``None``.

    Raises
    ------
    TypeError
        If ``seed`` is not an integer (bools and floats are refused).
    ValueError
        If ``seed`` is outside ``[0, 2**64)``.
    """
    if seed is None:
        return None
    seed = integer_from_tensor(seed, name)
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"{name} must be None or an integer in [0, 2**64), got {_describe(seed)}")
    value = int(seed)
    if not (0 <= value <= MAX_SEED):
        raise ValueError(f"{name} must be in [0, 2**64), got {value}")
    return value


def int64_bits(value: int) -> int:
    """Return the signed 64-bit integer with the bits of ``value``, a checked seed or offset.

    Frameworks carry a runtime seed as an ``int64`` tensor; a value in
    ``[2**63, 2**64)`` travels as ``value - 2**64`` and is read back as its 64
    bits (SPEC S2).
    """
    return value - 2**64 if value >= 2**63 else value


def validate_offset(offset: Any, size: int | None, name: str = "offset") -> int:
    """Check a Philox counter offset for an array of ``size`` elements (SPEC P3, P4).

    Parameters
    ----------
    offset : int
        Counter of the array's first element; the counters used are
        ``offset .. offset + size - 1`` and must fit in 64 bits.
    size : int or None
        Number of elements of the array; ``None`` (unknown until run time)
        skips the overflow check.
    name : str, optional
        The argument's name, used in error messages.

    Returns
    -------
    int
        The offset as a Python int.

    Raises
    ------
    TypeError
        If ``offset`` is not an integer.
    ValueError
        If ``offset`` is negative or the counters would overflow 64 bits.
    """
    offset = integer_from_tensor(offset, name)
    if isinstance(offset, (bool, np.bool_)) or not isinstance(offset, numbers.Integral):
        raise TypeError(f"{name} must be a non-negative integer, got {_describe(offset)}")
    value = int(offset)
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}")
    if size is not None and value + size > 2**64:
        raise ValueError(
            f"{name} + number of elements must not exceed 2**64, got {name}={value} "
            f"with {size} elements"
        )
    return value


def require_float_dtype(dtype_name: str, backend: str, conversion_hint: str) -> None:
    """Refuse integer, bool and complex inputs with a message that says how to convert (D7).

    Parameters
    ----------
    dtype_name : str
        Canonical dtype name of ``X``, e.g. ``"int64"``.
    backend : str
        The backend's name, for the message.
    conversion_hint : str
        A code snippet converting ``X`` to float32 in that framework.

    Raises
    ------
    TypeError
        If ``dtype_name`` is not one of :data:`FLOAT_DTYPES`.
    """
    if dtype_name not in FLOAT_DTYPES:
        raise TypeError(
            f"X must be a floating-point array (one of {', '.join(FLOAT_DTYPES)}), "
            f"got dtype {dtype_name} on the {backend} backend; convert it first, "
            f"e.g. {conversion_hint}"
        )


def static_shape(X: Any) -> tuple[int | None, ...] | None:
    """Return ``X``'s shape as a tuple (``None`` for a dimension unknown until run time).

    Works for every framework's array (NumPy, torch, MXNet, JAX shapes are
    tuples; TensorFlow's ``TensorShape`` iterates to ints or ``None``).
    Returns ``None`` when even the rank is unknown (a TensorFlow graph).
    """
    shape = getattr(X, "shape", None)
    if shape is None:
        return None
    try:
        return tuple(None if d is None else int(d) for d in shape)
    except (TypeError, ValueError):  # TensorShape of unknown rank refuses to iterate
        return None


def validate_noise_shape(
    noise_shape: Any, shape: tuple[int | None, ...] | None, name: str = "noise_shape"
) -> tuple[int | None, ...] | None:
    """Check a structured-dropout noise shape against ``X``'s shape (SPEC D12).

    Parameters
    ----------
    noise_shape : sequence of int or None, or None
        One entry per axis of ``X``: ``1`` shares one keep decision along that
        axis, ``X``'s size there (or ``None``, as in Keras) draws one decision
        per position. ``None`` (the whole argument) is element-wise dropout.
    shape : tuple
        ``X``'s static shape (:func:`static_shape`); ``None`` if its rank is unknown.
    name : str, optional
        The argument's name, used in error messages.

    Returns
    -------
    tuple of int or None
        The mask's shape, ``None`` entries filled in with X's size (still ``None``
        where that is unknown until run time); ``None`` when the mask
        has ``X``'s shape (``noise_shape`` is ``None`` or every entry is
        full), which is exactly element-wise dropout (same counters, D12).

    Raises
    ------
    TypeError
        If ``noise_shape`` is not a sequence of integers and ``None``.
    ValueError
        If its length differs from ``X``'s rank, or an entry is neither 1 nor
        ``X``'s size on that axis (the message names the axis and the value),
        or ``X``'s size is unknown on an axis whose entry is an integer other than 1.
    """
    if noise_shape is None:
        return None
    if isinstance(noise_shape, (str, bytes)) or not hasattr(noise_shape, "__iter__"):
        raise TypeError(
            f"{name} must be None or a sequence of ints/None (one per axis of X), "
            f"got {_describe(noise_shape)}"
        )
    entries = list(noise_shape)
    if shape is None:
        raise ValueError(f"{name} needs X's rank, which is unknown here: give X a static rank")
    if len(entries) != len(shape):
        raise ValueError(
            f"{name} must have one entry per axis of X (rank {len(shape)}, shape "
            f"{tuple(shape)}), got {len(entries)} entries: {tuple(entries)!r}"
        )
    mask: list[int | None] = []
    for axis, (entry, size) in enumerate(zip(entries, shape, strict=True)):
        if entry is None:
            # X's size, which may be unknown until run time (a traced batch axis).
            mask.append(size)
            continue
        if isinstance(entry, (bool, np.bool_)) or not isinstance(entry, numbers.Integral):
            raise TypeError(f"{name}[{axis}] must be an int or None, got {_describe(entry)}")
        value = int(entry)
        if value == 1:
            # An empty axis stays empty: the mask broadcasts from 1 to 0 as well,
            # but 0 keeps the mask's element count (and its counters) exact.
            mask.append(0 if size == 0 else 1)
        elif size is not None and value == size:
            mask.append(value)
        else:
            known = "unknown" if size is None else str(size)
            raise ValueError(
                f"{name}[{axis}] must be 1 (shared along axis {axis}) or X's size on "
                f"axis {axis} ({known}), got {value}"
            )
    if all(m == s for m, s in zip(mask, shape, strict=True)):
        return None
    return tuple(mask)
