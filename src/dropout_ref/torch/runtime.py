"""Runtime rates, seeds and offsets inside ``torch.compile`` (SPEC S1, S2).

Under Dynamo a 0-d tensor rate or seed has no Python value, so the custom
operators (which take Python ints) cannot serve it: the mask is drawn with
the plain-op Philox of :mod:`dropout_ref.torch.philox`, key and counters built
from the tensors, and Inductor fuses it like any other graph. The threshold
and scale are computed in float64 as the eager path computes them
(:func:`dropout_ref.core.runtime.runtime_rate`), so the output equals the
eager call with ``float(r)``/``int(seed)`` bit for bit and one program serves
every value.

Seeds and offsets are ``int64`` tensors read as their 64 bits: ``[0, 2**63)``
directly, and a negative value ``v`` means ``v + 2**64`` (the full range of
the eager call). An invalid rate (NaN, < 0, > 1) raises ``RuntimeError`` via
``torch._assert_async`` (eager and compiled), and the output is all NaN
wherever that check does not stop the program.
"""

from __future__ import annotations

from typing import Any

import torch

from dropout_ref.core.layer import mask_template
from dropout_ref.core.philox import MASK32, WORDS_PER_BLOCK, philox4x32_10_keyed
from dropout_ref.core.runtime import python_rate, runtime_rate
from dropout_ref.core.thresholds import scale_compute_dtype
from dropout_ref.core.validation import int64_bits
from dropout_ref.torch.philox import TORCH_OPS

INVALID_RATE = "dropout must satisfy 0 <= dropout <= 1 (a runtime rate was NaN, negative or > 1)"


class TorchMath:
    """:class:`dropout_ref.core.runtime.RateMath` for torch tensors."""

    def cast(self, x: Any, dtype: str) -> torch.Tensor:
        """Return ``x`` as ``dtype``."""
        return x.to(getattr(torch, dtype))

    def ceil(self, x: torch.Tensor) -> torch.Tensor:
        """Return ``torch.ceil(x)``."""
        return torch.ceil(x)

    def where(self, cond: Any, a: Any, b: Any) -> torch.Tensor:
        """Return ``torch.where(cond, a, b)``."""
        return torch.where(cond, a, b)

    def zeros_like(self, x: torch.Tensor) -> torch.Tensor:
        """Return ``torch.zeros_like(x)``."""
        return torch.zeros_like(x)

    def nextafter(self, x: torch.Tensor, up: Any) -> torch.Tensor:
        """Return the float next to ``x`` towards +inf where ``up``, else towards -inf."""
        inf = torch.full((), float("inf"), dtype=x.dtype, device=x.device)
        return torch.nextafter(x, torch.where(up, inf, -inf))

    def barrier(self, x: torch.Tensor) -> torch.Tensor:
        """Return ``x``: Inductor keeps IEEE order (no reassociation, no contraction)."""
        return x


MATH = TorchMath()


def is_runtime(value: Any) -> bool:
    """Return whether ``value`` is a tensor traced by Dynamo (eager tensors are read as numbers)."""
    # SymInt/SymFloat: a Python number that Dynamo made dynamic after it changed.
    runtime_types = (torch.Tensor, torch.SymInt, torch.SymFloat)
    return isinstance(value, runtime_types) and torch.compiler.is_compiling()


def _scalar(value: Any, name: str, kind: str, device: torch.device) -> torch.Tensor:
    """Check a 0-d tensor of ``kind`` ("float" or "int") and move it to ``device``."""
    if not isinstance(value, torch.Tensor):
        dtype = torch.int64 if kind == "int" else torch.float64
        if isinstance(value, int):  # a checked seed or offset: its 64 bits
            value = int64_bits(value)
        return torch.scalar_tensor(value, dtype=dtype, device=device)
    if value.dim() != 0:
        raise TypeError(f"{name} must be a 0-d tensor, got shape {tuple(value.shape)}")
    floating = value.is_floating_point()
    if (kind == "float") != floating or value.dtype == torch.bool or value.is_complex():
        wanted = "a floating" if kind == "float" else "an integer"
        raise TypeError(f"{name} must be {wanted} 0-d tensor, got dtype {value.dtype}")
    return value.to(device)


def words(template: torch.Tensor, seed: Any, offset: Any) -> torch.Tensor:
    """Return the Philox word (P3, ``int64``) of each element of ``template``, key from tensors."""
    device = template.device
    seed = _scalar(seed, "seed", "int", device).to(torch.int64)
    offset = _scalar(offset, "offset", "int", device).to(torch.int64)
    k0, k1 = seed & MASK32, (seed >> 32) & MASK32
    # offset read as 64 bits: an arithmetic shift, then the sign bits masked off.
    first_block = (offset >> 2) & ((1 << 62) - 1)
    lane = offset & (WORDS_PER_BLOCK - 1)
    size = template.numel()
    # One block more than the call needs: the first lane is known only at run time.
    n_blocks = -(-(WORDS_PER_BLOCK - 1 + size) // WORDS_PER_BLOCK)
    total = torch.arange(n_blocks, dtype=torch.int64, device=device) + (first_block & MASK32)
    c0 = total & MASK32
    c1 = ((total >> 32) + (first_block >> 32)) & MASK32
    flat = TORCH_OPS.interleave(philox4x32_10_keyed(TORCH_OPS, (c0, c1, 0, 0), k0, k1))
    index = torch.arange(size, dtype=torch.int64, device=device) + lane
    return flat[index].reshape(template.shape)


def runtime_dropout(
    X: torch.Tensor, rate: Any, seed: Any, offset: Any, noise: Any, key: Any
) -> torch.Tensor:
    """Dropout with a runtime rate, seed or offset; see the module notes (SPEC S1, S2)."""
    template = mask_template(X, noise)
    compute = getattr(torch, scale_compute_dtype(str(X.dtype).removeprefix("torch.")))
    if isinstance(rate, float):
        threshold_int, scale64 = python_rate(rate)
        drop_all = threshold_int > MASK32
        threshold: Any = 0 if drop_all else threshold_int
        scale = torch.tensor(scale64, dtype=torch.float64, device=X.device).to(compute)
        invalid = None
        rate64 = torch.tensor(rate, dtype=torch.float64, device=X.device)
    else:
        terms = runtime_rate(_scalar(rate, "dropout", "float", X.device), "float64", MATH)
        torch._assert_async(~terms.invalid, INVALID_RATE)
        drop_all, invalid = terms.drop_all, terms.invalid
        threshold = terms.threshold.to(torch.int64)
        scale = terms.scale.to(compute)
        rate64 = terms.rate
    if seed is None:
        # torch's generator, float32 uniforms against the smallest float32 >= r (as eager).
        t32 = rate64.to(torch.float32)
        t32 = torch.where(t32.to(torch.float64) < rate64, torch.nextafter(
            t32, torch.tensor(float("inf"), dtype=torch.float32, device=X.device)), t32)
        keep = torch.rand(template.shape, dtype=torch.float32, device=X.device) >= t32
    else:
        keep = words(template, seed, offset) >= threshold
    keep = keep & ~torch.as_tensor(drop_all, device=X.device)
    scaled = (X.to(compute) * scale).to(X.dtype)
    out = torch.where(keep, scaled, torch.zeros((), dtype=X.dtype, device=X.device))
    if invalid is not None:
        out = torch.where(invalid, torch.full((), float("nan"), dtype=X.dtype, device=X.device),
                          out)
    return out
