"""The outputs of a two-model port check (SPEC P8): JSON, CSV, curves PNG, terminal tables.

``compare.json`` holds the settings, the verdict lines, every step's losses and
differences and both models' site tables (of the first step whose tables differ,
else of step 0); ``compare.csv`` one row per step; ``loss_curves.png`` the two loss
curves and the differences against the tolerances. All three are rendered in
memory, then written atomically (:func:`dropout_ref.course.training.atomic_write_bytes`).
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any

from dropout_ref.porting.pair import PairRun
from dropout_ref.porting.site_tables import site_row

__all__ = ["pair_csv", "pair_json", "plot_pair", "site_table", "steps_table", "write_pair"]


def _shown_step(run: PairRun) -> int:
    found = run.site_difference
    return found[0] if found is not None else 0


def pair_json(run: PairRun) -> dict[str, Any]:
    """Return everything as one JSON-ready document."""
    cfg = run.config
    shown = _shown_step(run)
    record = run.records[shown] if run.records else None
    found = run.site_difference
    return {
        "meta": {
            "a": run.label_a,
            "b": run.label_b,
            "backend_a": run.backend_a,
            "backend_b": run.backend_b,
            "steps": cfg.steps,
            "seed": cfg.seed,
            "lr": cfg.lr,
            "mask_seed": "seed * 2**32 + step",
            "loss_tolerance": cfg.loss_tolerance,
            "weight_tolerance": cfg.weight_tolerance,
            "loss_diff": "|L_B - L_A| / max(|L_A|, tiny)",
            "weight_diff": "max over shared tensors of max|w_B - w_A| / max(max|w_A|, tiny)",
        },
        "ok": run.ok,
        "violations": run.violations(),
        "warnings": run.warnings(),
        "first_divergent_step": run.first_divergent_step,
        "site_difference": None if found is None else {
            "step": found[0], "j": found[1].j, "kinds": list(found[1].kinds),
            "message": found[1].message,
        },
        "sites_step": shown,
        "sites_a": [site_row(s) for s in record.sites_a] if record else [],
        "sites_b": [site_row(s) for s in record.sites_b] if record else [],
        "steps": [
            {
                "step": r.step,
                "mask_seed": r.mask_seed,
                "loss_a": r.loss_a,
                "loss_b": r.loss_b,
                "loss_diff": r.loss_diff,
                "weight_diff": r.weight_diff,
                "weight_abs_diff": r.weight_abs_diff,
                "worst_weight": r.worst_weight,
                "sites_a": len(r.sites_a),
                "sites_b": len(r.sites_b),
                "sites_agree": r.site_difference is None,
                "seconds_a": r.seconds_a,
                "seconds_b": r.seconds_b,
            }
            for r in run.records
        ],
    }


def pair_csv(run: PairRun) -> bytes:
    """Return one CSV row per step: losses, differences, site counts."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([
        "step", "mask_seed", "loss_a", "loss_b", "loss_diff", "weight_diff", "weight_abs_diff",
        "worst_weight", "sites_a", "sites_b", "sites_agree",
    ])
    for r in run.records:
        writer.writerow([
            r.step, r.mask_seed, repr(r.loss_a), repr(r.loss_b), repr(r.loss_diff),
            repr(r.weight_diff), repr(r.weight_abs_diff), r.worst_weight or "",
            len(r.sites_a), len(r.sites_b), r.site_difference is None,
        ])
    return buffer.getvalue().encode()


def plot_pair(run: PairRun) -> bytes:
    """Return a PNG: both loss curves, and the differences (log) against the tolerances."""
    from dropout_ref.course.png import figure_png, new_figure

    steps = [r.step for r in run.records]
    figure = new_figure(figsize=(8, 3.4), dpi=120)
    curves, diffs = figure.subplots(1, 2)
    curves.plot(steps, [r.loss_a for r in run.records], "-", color="C0", label=run.label_a)
    curves.plot(steps, [r.loss_b for r in run.records], "--", color="C1", label=run.label_b)
    curves.set_xlabel("step")
    curves.set_ylabel("training loss (dropout on)")
    curves.legend(fontsize=6)
    curves.grid(True, alpha=0.3)
    # Equal values (difference 0) have no place on a log axis: left out, not clamped.
    for values, style, label in (
        ([r.loss_diff for r in run.records], "o", "loss"),
        ([r.weight_diff for r in run.records], "s-", "weights"),
    ):
        points = [(s, v) for s, v in zip(steps, values, strict=True) if 0 < v < math.inf]
        diffs.semilogy([s for s, _ in points], [v for _, v in points], style, ms=3, label=label)
    shown = [r.loss_diff for r in run.records] + [r.weight_diff for r in run.records]
    if not any(0 < v < math.inf for v in shown):
        # Identical runs: nothing to plot but the tolerances; give the axis a range.
        diffs.set_ylim(1e-9, 1e-2)
    tolerances = [(run.config.loss_tolerance, "--", "loss tolerance"),
                  (run.config.weight_tolerance, "-", "weight tolerance")]
    for value, style, label in tolerances:
        if value > 0:  # a zero tolerance has no place on a log axis
            diffs.axhline(value, color="r", lw=0.8, ls=style, label=label)
    diffs.set_xlabel("step")
    diffs.set_ylabel("relative difference B vs A")
    diffs.legend(fontsize=6)
    diffs.grid(True, alpha=0.3)
    figure.suptitle(f"{run.label_a} vs {run.label_b}, seed {run.config.seed}", fontsize=9)
    return figure_png(figure)


def write_pair(run: PairRun, out_dir: str | Path) -> dict[str, Path]:
    """Write ``compare.json``, ``compare.csv`` and ``loss_curves.png`` into ``out_dir``."""
    from dropout_ref.course.training import atomic_write_bytes

    out = Path(out_dir)
    documents = {
        "json": ("compare.json", (json.dumps(pair_json(run), indent=2) + "\n").encode()),
        "csv": ("compare.csv", pair_csv(run)),
        "png": ("loss_curves.png", plot_pair(run)),
    }
    return {key: atomic_write_bytes(out / name, data) for key, (name, data) in documents.items()}


def steps_table(run: PairRun) -> Any:
    """Return a rich table: per step, both losses and the differences (past a tolerance in red)."""
    from rich.table import Table

    cfg = run.config
    table = Table(title=f"{run.label_a} (A) vs {run.label_b} (B), seed {cfg.seed}, lr {cfg.lr}")
    for column in (
        "step", "loss A", "loss B", f"loss diff (<= {cfg.loss_tolerance:g})",
        f"weight diff (<= {cfg.weight_tolerance:g})", "max |dw|", "sites A/B",
    ):
        table.add_column(column, justify="right")
    for r in run.records:
        bad = run.diverges(r)
        table.add_row(
            str(r.step), f"{r.loss_a:.6g}", f"{r.loss_b:.6g}",
            f"{r.loss_diff:.2e}", f"{r.weight_diff:.2e}", f"{r.weight_abs_diff:.2e}",
            f"{len(r.sites_a)}/{len(r.sites_b)}" + ("" if r.site_difference is None else " ≠"),
            style="red" if bad else None,
        )
    return table


def site_table(run: PairRun, limit: int = 40) -> Any:
    """Return a rich table: both site tables side by side (the first differing site red)."""
    from rich.table import Table

    shown = _shown_step(run)
    record = run.records[shown]
    first = record.site_difference.j if record.site_difference is not None else None
    table = Table(title=f"dropout sites at step {shown} (SPEC P8)")
    for column in ("j", "door A", "door B", "shape A | B", "rate A | B", "noise A | B"):
        table.add_column(column, overflow="fold")

    def cell(site: Any, key: str) -> str:
        value = site_row(site)[key]
        return "-" if value is None else str(tuple(value) if isinstance(value, list) else value)

    count = max(len(record.sites_a), len(record.sites_b))
    for j in range(min(count, limit)):
        a = record.sites_a[j] if j < len(record.sites_a) else None
        b = record.sites_b[j] if j < len(record.sites_b) else None
        table.add_row(
            str(j), cell(a, "door"), cell(b, "door"),
            f"{cell(a, 'shape')} | {cell(b, 'shape')}",
            f"{cell(a, 'rate')} | {cell(b, 'rate')}",
            f"{cell(a, 'noise_shape')} | {cell(b, 'noise_shape')}",
            style="red" if j == first else None,
        )
    if count > limit:
        table.caption = f"first {limit} of {count} sites (all in compare.json)"
    return table
