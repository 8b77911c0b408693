"""Attention dropout in PyTorch under the identity trick (see :mod:`.audit`).

``torch.nn.functional.scaled_dot_product_attention(q, k, v, dropout_p=p)`` with
``q = k = 0`` and ``v = I``: once with torch's own kernel choice, and once per
kernel forced with ``torch.nn.attention.sdpa_kernel`` (math; flash, the CPU's
fused kernel; on a GPU also memory-efficient and cuDNN). A kernel that refuses
``dropout_p > 0`` on this device makes its clauses n/a, with torch's reason.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from dropout_ref.conformance.attention.audit import AttentionProbe, identity_inputs
from dropout_ref.core.contract import NotApplicable


def _kernel_scope(backend: Any) -> contextlib.AbstractContextManager[Any]:
    if backend is None:
        return contextlib.nullcontext()
    from torch.nn.attention import sdpa_kernel

    return sdpa_kernel([backend])


def sdpa_probe(backend_name: str | None, device: str = "cpu") -> AttentionProbe:
    """Return the probe of ``scaled_dot_product_attention`` with one forced kernel (or none)."""
    from torch.nn.attention import SDPBackend

    backend = None if backend_name is None else getattr(SDPBackend, backend_name)
    dtypes = ("float32", "float64", "bfloat16", "float16")

    def run(p: float, dtype: str) -> np.ndarray:
        q, v = identity_inputs(
            lambda a: torch.as_tensor(a, dtype=getattr(torch, dtype), device=device)
        )
        with warnings.catch_warnings(record=True) as caught, _kernel_scope(backend):
            warnings.simplefilter("always")
            try:
                out = F.scaled_dot_product_attention(q, q, v, dropout_p=p)
            except RuntimeError as exc:
                why = "; ".join(str(w.message).split(" (Triggered")[0] for w in caught)
                raise NotApplicable(
                    f"the {backend_name} kernel does not run at dropout_p={p} in {dtype} on "
                    f"{device}: {str(exc).splitlines()[0]} ({why or 'no reason given'})"
                ) from exc
        return out.detach().to("cpu", torch.float64).numpy()

    return AttentionProbe(run=run, seed=torch.manual_seed, dtypes=dtypes)


def attention_natives() -> dict[str, Callable[[], AttentionProbe]]:
    """Name -> probe factory for every SDPA kernel this machine can select."""
    found: dict[str, Callable[[], AttentionProbe]] = {
        "F.scaled_dot_product_attention(dropout_p=)": lambda: sdpa_probe(None),
        "F.scaled_dot_product_attention[MATH]": lambda: sdpa_probe("MATH"),
        "F.scaled_dot_product_attention[FLASH_ATTENTION]": lambda: sdpa_probe("FLASH_ATTENTION"),
    }
    if torch.cuda.is_available():
        for kernel in ("MATH", "FLASH_ATTENTION", "EFFICIENT_ATTENTION", "CUDNN_ATTENTION"):
            found[f"F.scaled_dot_product_attention[{kernel}, cuda]"] = lambda kernel=kernel: (
                sdpa_probe(kernel, "cuda")
            )
    return found
