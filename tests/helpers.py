"""Numerical helpers of the tests: the same D5 yardsticks the conformance kit uses."""

from dropout_ref.core.numerics import round_to_dtype, scaled_reference, ulp, ulp_distance

__all__ = ["round_to_dtype", "scaled_reference", "ulp", "ulp_distance"]
