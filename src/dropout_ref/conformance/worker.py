"""Run the kit over one backend's implementations in this process; print JSON lines.

``python -m dropout_ref.conformance.worker --backend torch`` checks
``dropout_ref.torch.dropout_layer`` and every native op of
``dropout_ref.conformance.natives.torch``. ``dropout-ref report`` runs one such process
per backend, so a framework that crashes (or crashes another on import)
takes only its own row down.

Each line is one JSON event: ``start`` (the implementations), ``clause``
(one verdict, for the progress bar), ``report`` (a full report) and ``done``.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from typing import Any

from dropout_ref.conformance.attention.audit import ATTENTION_CLAUSES, check_attention
from dropout_ref.conformance.model_checks import MODEL_CLAUSES, check_model
from dropout_ref.conformance.model_probes import check_gpt
from dropout_ref.conformance.natives import NATIVE_AUDIT
from dropout_ref.conformance.natives.keras import use_keras_backend
from dropout_ref.conformance.natives.stochastic_depth import DROP_PATH_NOISE_SHAPE
from dropout_ref.conformance.registry import CLAUSES
from dropout_ref.conformance.result import ClauseResult
from dropout_ref.conformance.runner import backend_arrays, check_dropout
from dropout_ref.conformance.site_checks import SITE_CLAUSES
from dropout_ref.conformance.stats import DEFAULT_ALPHA
from dropout_ref.core.contract import kit_dropout_layer
from dropout_ref.core.drop_family import make_drop_family
from dropout_ref.core.registry import get_backend
from dropout_ref.models.backends import GPT_MODULE, MLP_MODULE

#: The noise shape of our own structured row (channel dropout of an (N, C, H, W) X).
OURS_NOISE_SHAPE: tuple[int | None, ...] = (None, None, 1, 1)
#: The kit's view of DropHead (SPEC V2, rescale "rate"): one decision per (sample, head).
DROP_HEAD_NOISE_SHAPE: tuple[int | None, ...] = (None, None, 1, 1)


def implementations(
    backend: str,
) -> list[tuple[str, str, Any, dict[str, str], tuple[int | None, ...] | None]]:
    """Return ``(name, kind, fn, expected_deviations, noise_shape)`` for each implementation.

    Our layer, element-wise and structured (SPEC D12), then each native op of
    ``dropout_ref.conformance.natives.<backend>``: ``NATIVES`` (element-wise) and, where the
    module has them, ``STRUCTURED`` (name -> (fn, noise_shape of the kit's variant)).
    """
    module = get_backend(backend)

    def ours_structured(X: Any, p: Any) -> Any:
        return kit_dropout_layer(module)(X, p, noise_shape=OURS_NOISE_SHAPE)

    # V1/V2 on the kit's dropout_layer: JAX's seed=None calls then draw the kit's keys.
    kit_path, kit_head = make_drop_family(module.ops, kit_dropout_layer(module))

    def ours_drop_head(X: Any, p: Any, **kwargs: Any) -> Any:
        # rescale="rate" is D12's dropout; "kept" is biased by design (E[out] = (1 - p**H) X).
        return kit_head(X, p, rescale="rate", **kwargs)

    found: list[tuple[str, str, Any, dict[str, str], tuple[int | None, ...] | None]] = [
        (f"dropout_ref.{backend}.dropout_layer", "ours", kit_dropout_layer(module), {}, None),
        (
            f"dropout_ref.{backend}.dropout_layer(noise_shape)",
            "ours",
            ours_structured,
            {},
            OURS_NOISE_SHAPE,
        ),
        (f"dropout_ref.{backend}.drop_path", "ours", kit_path, {}, DROP_PATH_NOISE_SHAPE),
        (
            f"dropout_ref.{backend}.drop_head(rescale='rate')",
            "ours",
            ours_drop_head,
            {},
            DROP_HEAD_NOISE_SHAPE,
        ),
    ]
    if not NATIVE_AUDIT.covers(backend):  # a backend with no native dropout to audit
        return found
    try:
        natives = NATIVE_AUDIT.load(backend)
    except ImportError as exc:  # e.g. Keras missing: our own layer is still checked
        sys.stderr.write(f"native ops of {backend} not audited: {exc}\n")
        return found
    expected = natives.EXPECTED_DEVIATIONS
    for name, fn in natives.NATIVES.items():
        found.append((name, "native", fn, dict(expected.get(name, {})), None))
    for name, (fn, noise_shape) in natives.STRUCTURED.items():
        found.append((name, "native", fn, dict(expected.get(name, {})), noise_shape))
    return found


def attention_probes(backend: str) -> list[tuple[str, Any, dict[str, str]]]:
    """Return ``(name, probe_factory, expected_deviations)`` of the backend's attention kernels.

    ``ATTENTION`` of ``dropout_ref.conformance.natives.<backend>``, audited through the
    identity trick (:mod:`dropout_ref.conformance.attention.audit`).
    """
    if not NATIVE_AUDIT.covers(backend):
        return []
    try:
        natives = NATIVE_AUDIT.load(backend)
    except ImportError:
        return []
    expected = natives.EXPECTED_DEVIATIONS
    return [
        (name, make, dict(expected.get(name, {})))
        for name, make in natives.ATTENTION.items()
    ]


def _name_filter(only: list[str] | None) -> Any:
    """Return ``keep(name)``: True when ``name`` contains one of ``only`` (all when none given)."""
    if not only:
        return lambda name: True
    return lambda name: any(text in name for text in only)


def _emit(event: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    """Check every implementation of one backend; JSON events on stdout."""
    parser = argparse.ArgumentParser(prog="python -m dropout_ref.conformance.worker")
    parser.add_argument("--backend", required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--alpha", type=float, default=DEFAULT_ALPHA)
    parser.add_argument("--clauses", nargs="*", default=[*CLAUSES, *MODEL_CLAUSES, *SITE_CLAUSES])
    parser.add_argument("--device", default=None)
    parser.add_argument(
        "--only", action="append", default=None, metavar="TEXT",
        help="check only the implementations whose name contains TEXT (repeatable)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    keep = _name_filter(args.only)
    if args.device is not None:
        try:
            backend_arrays(args.backend, args.device)
        except ValueError as exc:  # no such device here: one clear line, no run
            _emit({"event": "unusable", "message": str(exc)})
            return 2
    # Keras 3 runs on one framework per process: this worker's (before anything imports Keras).
    if "keras" not in sys.modules:
        use_keras_backend(args.backend)
    impls = [impl for impl in implementations(args.backend) if keep(impl[0])]
    names = [name for name, *_ in impls]
    attention = attention_probes(args.backend) if set(args.clauses) & set(ATTENTION_CLAUSES) else []
    attention = [probe for probe in attention if keep(probe[0])]
    names += [name for name, *_ in attention]
    # The course MLP's row (M clauses) and the GPT's (the site clauses X2-X4, measured through
    # its dropout_layer calls), where the course covers the backend (its declaration says).
    models = []
    for model, clauses, module, check in (
        ("MLP", MODEL_CLAUSES, MLP_MODULE, check_model),
        ("GPT", SITE_CLAUSES, GPT_MODULE, check_gpt),
    ):
        name = f"dropout_ref.{args.backend}.{model}"
        if any(c in clauses for c in args.clauses) and module.covers(args.backend) and keep(name):
            models.append((name, check))
    names += [name for name, _ in models]
    _emit({"event": "start", "implementations": names})
    for name, kind, fn, expected, noise_shape in impls:

        def progress(result: ClauseResult, name: str = name) -> None:
            _emit({"event": "clause", "implementation": name, "clause": result.clause})

        # Keras 3 seeds each layer's SeedGenerator from Python's `random` (not from the
        # framework's generator): seeded here, per implementation, a native's masks, and so a
        # verdict that depends on which elements it keeps (D5 at p=0.999), are the same in every
        # run of one --seed, whichever other rows this run checks (--only).
        random.seed(args.seed)
        report = check_dropout(
            fn,
            backend=args.backend,
            clauses=[c for c in args.clauses if c in CLAUSES],
            seed=args.seed,
            alpha=args.alpha,
            name=name,
            progress=progress,
            device=args.device,
            noise_shape=noise_shape,
        )
        _emit({"event": "report", "kind": kind, "expected": expected, "report": report.to_dict()})
    for name, make, expected in attention:

        def progress(result: ClauseResult, name: str = name) -> None:
            _emit({"event": "clause", "implementation": name, "clause": result.clause})

        report = check_attention(
            make(), name=name, backend=args.backend, seed=args.seed, alpha=args.alpha,
            progress=progress,
        )  # fmt: skip
        _emit(
            {"event": "report", "kind": "native", "expected": expected, "report": report.to_dict()}
        )
    for name, check in models:
        report = check(backend=args.backend, seed=args.seed, alpha=args.alpha, name=name,
                       device=args.device)
        for clause in report.results:
            _emit({"event": "clause", "implementation": name, "clause": clause})
        _emit({"event": "report", "kind": "ours", "expected": {}, "report": report.to_dict()})
    _emit({"event": "done"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
