"""Test your own dropout against the SPEC with the conformance kit.

Run it as a script to print the report, or with pytest to get assertions:

    python examples/conformance_my_dropout.py
    python -m pytest examples/conformance_my_dropout.py
"""



from __future__ import annotations

import torch

from dropout_ref.conformance import assert_conforms, check_dropout


def my_dropout(X: torch.Tensor, p: float) -> torch.Tensor:
    """The course's dropout, almost.

    ``mask * X`` leaks NaN through dropped elements (D6), and ``X / (1 - p)``
    rounds ``1 - p`` to float32 first, up to 1.5 ulp off (D5).
    """
    if not 0 <= p <= 1:
        raise ValueError(f"dropout must be in [0, 1], got {p!r}")
    if p == 1:
        return torch.zeros_like(X)
    if p == 0:
        return X
    mask = (torch.rand(X.shape, device=X.device) >= p).to(X.dtype)
    return mask * X / (1.0 - p)


def fixed_dropout(X: torch.Tensor, p: float) -> torch.Tensor:
    """The same, selecting instead of multiplying: dropped elements are exactly +0.0."""
    from dropout_ref.torch import dropout_layer

    return dropout_layer(X, p)


def test_fixed_dropout_conforms() -> None:
    """Every D clause holds (raises an AssertionError listing the evidence otherwise)."""
    assert_conforms(fixed_dropout, backend="torch")


def test_my_dropout_conforms_but_for_known_issues() -> None:
    """Accept the clauses you know you break; everything else must hold."""
    assert_conforms(my_dropout, backend="torch", allow=["D1", "D5", "D6", "D7"])


if __name__ == "__main__":
    report = check_dropout(my_dropout, backend="torch")
    print(report.summary())
    print("failures:", report.failures)
