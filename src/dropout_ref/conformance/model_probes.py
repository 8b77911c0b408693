"""The course models described to the site checks (:mod:`dropout_ref.conformance.site_checks`).

:func:`gpt_probe` describes a backend's GPT (SPEC X), :func:`mlp_probe` the MLP
(SPEC M, the same checks through its two sites), and :func:`check_gpt` runs
the site clauses on a GPT for ``dropout-ref report``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from dropout_ref.conformance.result import ConformanceReport
from dropout_ref.conformance.runner import backend_arrays
from dropout_ref.conformance.site_checks import SiteProbe, SiteSpec, check_sites
from dropout_ref.conformance.stats import DEFAULT_ALPHA
from dropout_ref.core.registry import get_backend
from dropout_ref.models.backends import GPT_MODULE, MLP_MODULE

#: The kit's GPT: big enough that every site tensor holds thousands of elements
#: (X2's binomial tests have power), small enough to run eagerly in seconds.
GPT_SIZES = {"vocab_size": 29, "block_size": 16, "n_layer": 2, "n_head": 4, "n_embd": 32}
GPT_BATCH = 8
#: Distinct rates per site: a site that runs at another site's rate shows.
GPT_RATES = {"embd": 0.1, "attn": 0.3, "resid": 0.5}

MLP_SIZES = (64, 10, 48, 40)  # num_inputs, num_outputs, num_hiddens1, num_hiddens2
MLP_BATCH = 128
MLP_RATES = {"dropout1": 0.2, "dropout2": 0.5}


def _forward(model: Any, inputs: Any, *, training: bool, mask_seed: int | None = None) -> Any:
    from dropout_ref.models.forward import forward_numpy

    return forward_numpy(model, inputs, training=training, mask_seed=mask_seed)


def _gpt_weights(config: Any, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """GPT-2's init made louder: logits of order 1, so that a misplaced site shows in X4."""
    from dropout_ref.models.gpt_config import init_weights

    weights = {}
    for name, value in init_weights(config, rng).items():
        if name.endswith(".bias"):
            value = rng.normal(0.0, 0.05, size=value.shape)
        elif ".ln_" in name:
            value = 1.0 + rng.normal(0.0, 0.1, size=value.shape)
        else:
            value = value * 5.0
        weights[name] = np.asarray(value, np.float32)
    return weights


def gpt_probe(
    backend: str,
    make_model: Callable[..., Any] | None = None,
    *,
    seed: int = 0,
    place: Callable[[Any], Any] | None = None,
) -> SiteProbe:
    """Describe ``backend``'s GPT (or ``make_model(config, weights)``'s) to the site checks.

    Sites of SPEC X4: ``embd`` on (B, T, n_embd), then per layer ``attn`` on
    (B, n_head, T, T), ``resid`` after attention and ``resid`` after the MLP.
    The oracle is :class:`dropout_ref.numpy.GPT` with the same weights.
    """
    from dropout_ref.models.gpt_config import SITE_STRIDE, GPTConfig, dropout_sites

    module = get_backend(backend)
    if make_model is None:
        make_model = GPT_MODULE.load(backend).GPT
    rng = np.random.default_rng([seed, 0x69B7])
    config = GPTConfig(**GPT_SIZES, dropout=dict(GPT_RATES))
    weights = _gpt_weights(config, rng)
    B, T, C, nh = GPT_BATCH, config.block_size, config.n_embd, config.n_head
    inputs = rng.integers(0, config.vocab_size, size=(B, T)).astype(np.int64)
    shapes = {"embd": (B, T, C), "attn": (B, nh, T, T), "resid": (B, T, C)}
    sites = [
        SiteSpec(site.name, shapes[site.name], site.description)
        for site in dropout_sites(config.n_layer)
    ]

    def build(rates: Mapping[str, float]) -> Any:
        model = make_model(config.with_dropout(dict(rates)), weights)
        return model if place is None else place(model)

    def oracle(rates: Mapping[str, float], mask_seed: int) -> np.ndarray:
        from dropout_ref.numpy import GPT

        reference = GPT(config.with_dropout(dict(rates)), weights)
        return reference(inputs, training=True, mask_seed=mask_seed)

    return SiteProbe(
        build=build,
        sites=sites,
        inputs=inputs,
        forward=_forward,
        layer=module.dropout_layer,
        to_numpy=module.arrays.to_numpy,
        rates=dict(GPT_RATES),
        stride=SITE_STRIDE,
        oracle=oracle,
        modules=(getattr(make_model, "__module__", ""),),
    )


def mlp_probe(
    backend: str, make_model: Callable[..., Any] | None = None, *, seed: int = 0
) -> SiteProbe:
    """Describe ``backend``'s MLP to the site checks: two sites, after each hidden ReLU (M4)."""
    from dropout_ref.models.mlp_spec import DROPOUT_OFFSETS, INIT_STD, MLPSpec, init_weights

    module = get_backend(backend)
    if make_model is None:
        make_model = MLP_MODULE.load(backend).MLP
    rng = np.random.default_rng([seed, 0x4D4C])
    n_in, n_out, h1, h2 = MLP_SIZES
    spec = MLPSpec(n_in, h1, h2, n_out, 0.0, 0.0)
    weights = {
        k: (v / INIT_STD * 0.2 if k.startswith("W") else v + 0.1).astype(np.float32)
        for k, v in init_weights(spec, rng).items()
    }
    inputs = rng.uniform(-1.0, 1.0, size=(MLP_BATCH, n_in)).astype(np.float32)
    sites = [
        SiteSpec("dropout1", (MLP_BATCH, h1), "after the first hidden ReLU"),
        SiteSpec("dropout2", (MLP_BATCH, h2), "after the second hidden ReLU"),
    ]

    def build(rates: Mapping[str, float]) -> Any:
        return make_model(n_in, n_out, h1, h2, rates["dropout1"], rates["dropout2"],
                          weights=weights)  # fmt: skip

    def oracle(rates: Mapping[str, float], mask_seed: int) -> np.ndarray:
        from dropout_ref.numpy import MLP

        reference = MLP(n_in, n_out, h1, h2, rates["dropout1"], rates["dropout2"], weights=weights)
        return reference.forward(inputs, training=True, mask_seed=mask_seed)

    return SiteProbe(
        build=build,
        sites=sites,
        inputs=inputs,
        forward=_forward,
        layer=module.dropout_layer,
        to_numpy=module.arrays.to_numpy,
        rates=dict(MLP_RATES),
        stride=DROPOUT_OFFSETS[1] - DROPOUT_OFFSETS[0],
        oracle=oracle,
        modules=(getattr(make_model, "__module__", ""),),
    )


def check_gpt(
    make_model: Callable[..., Any] | None = None,
    backend: str = "numpy",
    seed: int = 0,
    alpha: float = DEFAULT_ALPHA,
    *,
    name: str | None = None,
    device: Any = None,
) -> ConformanceReport:
    """Check a GPT of ``backend`` against SPEC X2-X4 through its site calls.

    Parameters
    ----------
    make_model : callable, optional
        ``make_model(config, weights)`` returning a GPT that takes Hugging Face
        GPT-2 weights (X5); default ``dropout_ref.<backend>.GPT``.
    backend : str, optional
        Whose train/eval idiom, ``dropout_layer`` and generator to use.
    seed : int, optional
        Seeds weights, inputs, the framework's generator and X4's mask seed.
    alpha : float, optional
        Overall false-alarm probability (Bonferroni-split over X2's one test per site).
    name : str, optional
        Name of the model in the report.
    device : str, optional
        Where the model lives (through the bridge's ``place_model``; default the CPU).

    Returns
    -------
    ConformanceReport
        Verdicts on X2, X3 and X4.

    """
    arrays = backend_arrays(backend, device)
    probe = gpt_probe(backend, make_model, seed=seed, place=arrays.place_model)
    label = name or f"dropout_ref.{backend}.GPT"
    return check_sites(probe, backend=backend, name=label, seed=seed, alpha=alpha, arrays=arrays)
