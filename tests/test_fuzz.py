"""Hypothesis fuzzing of every backend's dropout_layer (D1, D2, D3, D5, D6, D7).

Rates and inputs, bad ones included (NaN, inf, negative, > 1, bool, str, None,
multi-element tensors; int/bool X, 0-d, empty, float16/bfloat16). Every case
must give a correct result or the documented error: ``ValueError``/``TypeError``
naming the argument. The number of cases run is printed (``pytest -s``) and
checked.
"""



from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dropout_ref.conformance.context import is_positive_zero
from dropout_ref.core.numerics import scaled_reference, ulp

SHAPES = [(), (0,), (3,), (2, 3), (0, 4), (4, 5, 2)]
BAD_X_DTYPES = ["int32", "int64", "bool"]
EXAMPLES = 120

VALID_RATES = st.one_of(
    st.floats(0.0, 1.0),
    st.sampled_from([0.0, 1.0, 0, 1, 0.5, 1 - 1e-8, 5e-324]),
    st.floats(0.0, 1.0).map(np.float32).filter(lambda r: 0 <= float(r) <= 1),
    st.floats(0.0, 1.0).map(np.float64),
)
BAD_RATES = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).filter(lambda r: not 0.0 <= r <= 1.0),
    st.booleans(),
    st.text(max_size=4),
    st.none(),
    st.complex_numbers(max_magnitude=1, allow_nan=False).filter(lambda z: z.imag != 0),
    st.just([0.5]),
)

COUNTS: dict[str, int] = {}


def _values(shape: tuple[int, ...], seed: int, family: str) -> np.ndarray:
    """X's values: normal, with NaN/inf/-0.0 mixed in, near float16's max, or subnormal."""
    rng = np.random.default_rng(seed)
    data = rng.normal(size=shape)
    if family == "special":
        specials = np.array([np.nan, np.inf, -np.inf, -0.0, 0.0])
        mask = rng.random(shape) < 0.4
        data = np.where(mask, rng.choice(specials, size=shape), data)
    elif family == "huge":
        data = data * 3e4
    elif family == "tiny":
        data = data * 1e-6
    return np.asarray(data, np.float64)


def _check_values(arrays, X, out, rate: float, dtype: str) -> None:
    """D2/D3/D5/D6: each output element is +0.0 or within 1 ulp of X / (1 - rate)."""
    x = np.asarray(arrays.to_numpy(X), np.float64)
    y = np.asarray(arrays.to_numpy(out), np.float64)
    if rate == 0.0:
        assert np.array_equal(x, y, equal_nan=True)
        return
    dropped = is_positive_zero(y)
    if rate == 1.0:
        assert dropped.all(), y
        return
    with np.errstate(all="ignore"):
        expected = x / (1.0 - rate)
    big = np.abs(expected) > 0.5 * float(np.finfo(np.float32 if dtype == "bfloat16" else dtype).max)
    kept = ~dropped & ~big
    nan_ok = np.isnan(x) & np.isnan(y)
    with np.errstate(all="ignore"):
        # D5's yardstick, as the kit's: within 1 ulp of X / (1 - p) correctly rounded to
        # the dtype (the unrounded quotient is up to 1.5 ulp from a correct product).
        reference = scaled_reference(x, rate, dtype)
        close = np.abs(y - reference) <= ulp(reference, dtype)
    exact = y == expected
    assert (nan_ok | close | exact)[kept].all(), (x[kept], y[kept], rate, dtype)


def _fuzz(backend, rate_strategy, expect_error: bool, tag: str) -> None:
    arrays = backend.arrays
    dtypes = list(arrays.float_dtypes) + BAD_X_DTYPES

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        derandomize=True,
        database=None,
    )
    @given(
        rate=rate_strategy,
        dtype=st.sampled_from(dtypes),
        shape=st.sampled_from(SHAPES),
        values_seed=st.integers(0, 2**32 - 1),
        family=st.sampled_from(["normal", "special", "huge", "tiny"]),
        rate_as_tensor=st.booleans(),
    )
    def case(rate, dtype, shape, values_seed, family, rate_as_tensor):
        data = _values(shape, values_seed, family)
        if dtype in BAD_X_DTYPES:
            data = np.nan_to_num(data, nan=0, posinf=1, neginf=-1).astype(dtype)
        X = arrays.from_numpy(data, dtype)
        rate_value = rate
        if isinstance(rate, list):  # a multi-element tensor of the backend
            rate = arrays.from_numpy(np.array([0.5, 0.5]), "float32")
        elif rate_as_tensor and isinstance(rate, float):
            rate = arrays.from_numpy(np.array(rate), "float64")  # a 0-d tensor is a scalar
            # The rate the tensor holds (JAX without jax_enable_x64 rounds it to float32).
            rate_value = float(np.asarray(arrays.to_numpy(rate)))
        # A bad float rate that a float32 tensor rounds into [0, 1] (-1e-240 -> -0.0) is valid.
        error_expected = expect_error and not (
            isinstance(rate_value, float) and 0.0 <= rate_value <= 1.0 and rate is not rate_value
        )
        COUNTS[tag] = COUNTS.get(tag, 0) + 1
        bad_x = dtype in BAD_X_DTYPES
        try:
            out = backend.dropout_layer(X, rate)
        except (ValueError, TypeError) as exc:
            assert error_expected or bad_x, f"valid call raised {exc!r}"
            assert "dropout" in str(exc) or "X " in str(exc) or "X must" in str(exc), str(exc)
            return
        assert not (error_expected or bad_x), f"accepted rate={rate!r}, X dtype {dtype}"
        assert arrays.dtype_name(out) == dtype
        assert tuple(arrays.to_numpy(out).shape) == shape
        _check_values(arrays, X, out, float(rate_value), dtype)

    case()


def test_fuzz_valid_rates_give_correct_results(backend, capsys) -> None:
    """D2, D3, D5, D6, D7: any rate in [0, 1] on any float X gives a correct result."""
    tag = f"{backend.arrays.name}/valid"
    _fuzz(backend, VALID_RATES, expect_error=False, tag=tag)
    with capsys.disabled():
        print(f"\n[fuzz] {tag}: {COUNTS[tag]} cases")
    assert COUNTS[tag] >= EXAMPLES // 2


def test_fuzz_bad_rates_give_the_documented_error(backend, capsys) -> None:
    """D1, D7: bad rates (and int/bool X) raise ValueError/TypeError naming the argument."""
    tag = f"{backend.arrays.name}/bad"
    _fuzz(backend, BAD_RATES, expect_error=True, tag=tag)
    with capsys.disabled():
        print(f"\n[fuzz] {tag}: {COUNTS[tag]} cases")
    assert COUNTS[tag] >= EXAMPLES // 2
