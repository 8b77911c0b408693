"""Render benchmark results: a rich table per backend, or JSON."""

from __future__ import annotations

import importlib.util
import json
from typing import TYPE_CHECKING, Any

from dropout_ref.bench import gpt_step
from dropout_ref.bench.cases.common import (
    BASELINE,
    MLP_NATIVE,
    MLP_OURS,
    NATIVE,
    NATIVE_EAGER,
    NATIVE_FWD_BWD,
    OURS,
    OURS_FWD_BWD,
    OURS_PORTABLE,
    OURS_PORTABLE_EAGER,
    OURS_PORTABLE_FUSED,
    OURS_PORTABLE_FWD_BWD,
)
from dropout_ref.bench.gpt_step import gpt_line

if TYPE_CHECKING:  # rich is imported where it draws: a bare GPU machine may lack it
    from rich.console import Console
    from rich.table import Table


def to_json(results: dict[str, Any]) -> str:
    """Return the results as indented JSON (the format kept for history)."""
    return json.dumps(results, indent=2, sort_keys=True)


def _time_cell(row: dict[str, Any] | None) -> str:
    if row is None:
        return ""
    if row.get("status") != "ok":
        return "skipped"
    return f"{row['min_ms']:.3g}/{row['median_ms']:.3g}"


def _compile_cell(row: dict[str, Any] | None) -> str:
    if row is None or row.get("compile_s") is None:
        return ""
    return f"{row['compile_s']:.1f}"


def _ratio_cell(rows: dict[str, dict], top: str, bottom: str, target: float | None) -> str:
    a, b = rows.get(top), rows.get(bottom)
    if not a or not b or a.get("status") != "ok" or b.get("status") != "ok":
        return ""
    value = a["min_ms"] / b["min_ms"]
    text = f"{value:.2f}"
    if target is not None:
        colour = "green" if value <= target else "red"
        text = f"[{colour}]{text}[/{colour}]"
    return text


def _memory_cell(rows: dict[str, dict], case: str) -> str:
    value = (rows.get(case) or {}).get("peak_extra_bytes_per_element")
    return "" if value is None else f"{value:.2f}"


def backend_table(result: dict[str, Any]) -> Table:
    """Return the table of one backend: min / median ms per case, ratios, extra memory."""
    from rich.table import Table

    title = f"{result['backend']} {result.get('framework_version', '')}"
    table = Table(title=title, title_justify="left")
    for column in ("size", "dtype", "X*2.0 ms", "native ms", "ours ms", "ours/native",
                   "ours/X*2", "portable ms", "fused ms", "compile s", "fused/X*2",
                   "extra B/el ours", "extra B/el native"):
        table.add_column(column, justify="right")
    points: dict[tuple, dict[str, dict]] = {}
    for row in result.get("rows", []):
        if row.get("log2_size") is not None:
            points.setdefault((row["dtype"], row["log2_size"]), {})[row["case"]] = row
    for (dtype, log2_size), rows in points.items():
        if "*" in rows:
            table.add_row(f"2^{log2_size}", dtype, rows["*"]["status"])
            continue
        table.add_row(
            f"2^{log2_size}", dtype,
            _time_cell(rows.get(BASELINE)), _time_cell(rows.get(NATIVE)),
            _time_cell(rows.get(OURS)),
            _ratio_cell(rows, OURS, NATIVE, 1.0),
            _ratio_cell(rows, OURS, BASELINE, None),
            _time_cell(rows.get(OURS_PORTABLE)), _time_cell(rows.get(OURS_PORTABLE_FUSED)),
            _compile_cell(rows.get(OURS_PORTABLE_FUSED)),
            _ratio_cell(rows, OURS_PORTABLE_FUSED, BASELINE, 3.0),
            _memory_cell(rows, OURS), _memory_cell(rows, NATIVE),
        )
    return table


#: Target of portable/native in every backend (the portable mode at the speed of each
#: framework's own generator).
PORTABLE_TARGET = 1.10
#: (label suffix, portable case, native case) of the rows of :func:`portable_rows`.
_PORTABLE_PAIRS = (("", OURS_PORTABLE, NATIVE), (" eager", OURS_PORTABLE_EAGER, NATIVE_EAGER))


def portable_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Return one row per backend, size, dtype and mode: portable, native and X*2 times.

    Keys: ``backend`` (``"jax eager"`` for JAX's eager cases), ``log2_size``, ``dtype``,
    ``portable``, ``native``, ``baseline`` (the case rows, or ``None``).
    """
    out = []
    for result in results["backends"]:
        points: dict[tuple, dict[str, dict]] = {}
        for row in result.get("rows", []):
            if row.get("log2_size") is not None:
                points.setdefault((row["log2_size"], row["dtype"]), {})[row["case"]] = row
        for suffix, portable, native in _PORTABLE_PAIRS:
            for (log2_size, dtype), rows in points.items():
                if portable in rows:
                    out.append({"backend": result["backend"] + suffix, "log2_size": log2_size,
                                "dtype": dtype, "portable": rows[portable],
                                "native": rows.get(native), "baseline": rows.get(BASELINE)})
    return out


def portable_table(results: dict[str, Any]) -> Table:
    """Return one table of every backend: portable/native and portable/(X*2)."""
    from rich.table import Table

    table = Table(title="portable mode, every backend: dropout_layer(X, p, seed=s)",
                  title_justify="left")
    for column in ("backend", "size", "dtype", "portable ms", "native ms", "X*2.0 ms",
                   f"portable/native (<= {PORTABLE_TARGET})", "portable/X*2"):
        table.add_column(column, justify="right")
    for row in portable_rows(results):
        rows = {"p": row["portable"], "n": row["native"], "b": row["baseline"]}
        table.add_row(
            row["backend"], f"2^{row['log2_size']}", row["dtype"],
            _time_cell(rows["p"]), _time_cell(rows["n"]), _time_cell(rows["b"]),
            _ratio_cell(rows, "p", "n", PORTABLE_TARGET), _ratio_cell(rows, "p", "b", None),
        )
    return table


def portable_markdown(results: dict[str, Any]) -> list[str]:
    """Return :func:`portable_table` as markdown lines."""
    lines = ["| backend | size | dtype | portable ms | native ms | X*2.0 ms | portable/native "
             "| portable/X*2 |", "|---|---|---|---|---|---|---|---|"]
    for row in portable_rows(results):
        rows = {"p": row["portable"], "n": row["native"], "b": row["baseline"]}
        cells = [row["backend"], f"2^{row['log2_size']}", row["dtype"],
                 _plain_time(rows["p"]), _plain_time(rows["n"]), _plain_time(rows["b"]),
                 _plain_ratio(rows, "p", "n"), _plain_ratio(rows, "p", "b")]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def gpt_table(results: dict[str, Any]) -> Table:
    """Return one table of the GPT train steps of every backend (``--gpt-step``)."""
    from rich.table import Table

    table = Table(title=f"GPT train steps ({gpt_step.STEPS_PER_CALL} per call)",
                  title_justify="left")
    for column in ("backend", "native ms", "ours ms", "portable ms",
                   f"ours/native (<= {gpt_step.OURS_TARGET})",
                   f"portable/native (<= {gpt_step.PORTABLE_TARGET})"):
        table.add_column(column, justify="right")
    for row in gpt_step.result_rows(results):
        table.add_row(
            row["backend"], _time_cell(row["native"]), _time_cell(row["ours"]),
            _time_cell(row["portable"]),
            _ratio_cell(row, "ours", "native", gpt_step.OURS_TARGET),
            _ratio_cell(row, "portable", "native", gpt_step.PORTABLE_TARGET),
        )
    return table


def gpt_markdown(results: dict[str, Any]) -> list[str]:
    """Return :func:`gpt_table` as markdown lines."""
    lines = ["| backend | native ms | ours ms | portable ms | ours/native | portable/native |",
             "|---|---|---|---|---|---|"]
    for row in gpt_step.result_rows(results):
        cells = [row["backend"], _plain_time(row["native"]), _plain_time(row["ours"]),
                 _plain_time(row["portable"]), _plain_ratio(row, "ours", "native"),
                 _plain_ratio(row, "portable", "native")]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def mlp_line(result: dict[str, Any]) -> str | None:
    """Return the MLP-epoch comparison of one backend, or ``None`` when it was not run."""
    rows = {row["case"]: row for row in result.get("rows", []) if row.get("log2_size") is None}
    if MLP_OURS not in rows or MLP_NATIVE not in rows:
        return None
    ours, native = rows[MLP_OURS], rows[MLP_NATIVE]
    return (f"{result['backend']}: one MLP epoch, ours {_time_cell(ours)} ms, native "
            f"{_time_cell(native)} ms, ratio {ours['min_ms'] / native['min_ms']:.2f} "
            "(target <= 1.05)")


def kernel_compile_line(result: dict[str, Any]) -> str | None:
    """Return the compiled CPU kernel's first-call cost, cold and cached, or ``None``."""
    cost = result.get("kernel_compile")
    if not cost:
        return None
    if not cost.get("ok"):
        return f"{result['backend']}: compiled CPU kernel unavailable ({cost.get('why')})"
    return (f"{result['backend']}: compiled CPU kernel ({cost['why']}), {cost['signatures']} "
            f"entries, first use in a fresh process {cost['cold_s']:.1f} s with an empty cache "
            f"(compile, paid once per machine), {cost['cached_s']:.1f} s from numba's disk cache")


def print_report(results: dict[str, Any], console: Console | None = None) -> None:
    """Print every backend's table, the MLP epochs, errors and the machine's load."""
    if results["config"].get("device", "cpu") != "cpu" or (
        console is None and importlib.util.find_spec("rich") is None
    ):
        print(markdown_report(results))
        return
    from rich.console import Console

    # The table is wide: do not squeeze it into 80 columns when piped to a file.
    console = console or Console(width=max(Console().width, 160))
    for result in results["backends"]:
        if "error" in result:
            console.print(f"[red]{result['backend']}: {result['error']}[/red]")
            continue
        console.print(backend_table(result))
        for line in (mlp_line(result), gpt_line(result)):
            if line:
                console.print(line)
        line = kernel_compile_line(result)
        if line:
            console.print(line)
    if portable_rows(results):
        console.print(portable_table(results))
    if gpt_step.result_rows(results):
        console.print(gpt_table(results))
    machine = results["machine"]
    console.print(
        "portable = dropout_layer(X, p, seed=s); fused = the portable mode compiled "
        "(torch.compile: mask and select in one pass; XLA; numba), "
        "compile s = first call minus the fastest; "
        f"times: min/median ms over {results['config']['repeats']} interleaved repeats; "
        f"extra B/el: peak bytes beyond the output per element (VmHWM); "
        f"{machine['cpu_count']} CPUs, load average {machine['load_average_1_5_15']} before, "
        f"{results['load_average_after']} after; total {results['seconds']:.0f} s"
    )


#: Columns of the markdown table: (header, numerator case, denominator case or None).
_MARKDOWN_TIMES = (
    ("X*2.0", BASELINE), ("native", NATIVE), ("ours", OURS), ("ours seed=", OURS_PORTABLE),
    ("native f+b", NATIVE_FWD_BWD), ("ours f+b", OURS_FWD_BWD),
    ("ours seed= f+b", OURS_PORTABLE_FWD_BWD),
)
_MARKDOWN_RATIOS = (
    ("ours/native", OURS, NATIVE), ("seed=/native", OURS_PORTABLE, NATIVE),
    ("seed=/X*2", OURS_PORTABLE, BASELINE), ("f+b ours/native", OURS_FWD_BWD, NATIVE_FWD_BWD),
    ("f+b seed=/native", OURS_PORTABLE_FWD_BWD, NATIVE_FWD_BWD),
)


def _plain_time(row: dict[str, Any] | None) -> str:
    if row is None:
        return ""
    if row.get("status") != "ok":
        return "skipped"
    return f"{row['min_ms']:.3g} / {row['median_ms']:.3g}"


def _plain_ratio(rows: dict[str, dict], top: str, bottom: str) -> str:
    a, b = rows.get(top), rows.get(bottom)
    if not a or not b or a.get("status") != "ok" or b.get("status") != "ok" or not b["min_ms"]:
        return ""
    return f"{a['min_ms'] / b['min_ms']:.2f}"


def _bytes(rows: dict[str, dict], case: str, key: str) -> str:
    value = (rows.get(case) or {}).get(key)
    return "" if value is None else f"{value:.2f}"


def markdown_report(results: dict[str, Any]) -> str:
    """Return every backend's results as markdown tables (no rich needed; the GPU report).

    Times are min / median ms; ratios use the minimum; ``f+b`` is forward +
    ``out.backward(G)``; ``saved B/el`` is what autograd keeps for backward and
    ``extra B/el`` the device memory of one forward beyond its output, per element.
    """
    lines: list[str] = []
    device = results["config"].get("device", "cpu")
    for result in results["backends"]:
        name = f"{result['backend']} {result.get('framework_version', '')}".strip()
        where = result.get("device_name") or device
        lines.append(f"### {name} on {where}")
        lines.append("")
        if "error" in result:
            lines.append(f"error: {result['error']}")
            lines.append("")
            continue
        points: dict[tuple, dict[str, dict]] = {}
        for row in result.get("rows", []):
            if row.get("log2_size") is not None:
                points.setdefault((row["dtype"], row["log2_size"]), {})[row["case"]] = row
        present = {case for rows in points.values() for case in rows}
        times = [(h, c) for h, c in _MARKDOWN_TIMES if c in present]
        ratios = [(h, a, b) for h, a, b in _MARKDOWN_RATIOS if a in present and b in present]
        memory = [(f"{what} B/el {h}", c, key) for what, key in (
            ("saved", "saved_bytes_per_element"), ("extra", "peak_extra_bytes_per_element"))
            for h, c in (("ours", OURS), ("seed=", OURS_PORTABLE), ("native", NATIVE))
            if any(key in rows.get(c, {}) for rows in points.values())]
        header = ["size", "dtype", *(f"{h} ms" for h, _ in times), *(h for h, *_ in ratios),
                  *(h for h, *_ in memory)]
        lines.append("| " + " | ".join(header) + " |")
        lines.append("|" + "---|" * len(header))
        for (dtype, log2_size), rows in points.items():
            if "*" in rows:
                lines.append(f"| 2^{log2_size} | {dtype} | {rows['*']['status']} |")
                continue
            cells = [f"2^{log2_size}", dtype, *(_plain_time(rows.get(c)) for _, c in times),
                     *(_plain_ratio(rows, a, b) for _, a, b in ratios),
                     *(_bytes(rows, c, key) for _, c, key in memory)]
            lines.append("| " + " | ".join(cells) + " |")
        for line in (mlp_line(result), gpt_line(result)):
            if line:
                lines.extend(["", line])
        lines.append("")
    if portable_rows(results):
        lines.extend(["### portable mode, every backend", "", *portable_markdown(results), ""])
    if gpt_step.result_rows(results):
        lines.extend(["### GPT train steps", "", *gpt_markdown(results), ""])
    machine = results["machine"]
    lines.append(
        f"min / median ms over {results['config']['repeats']} interleaved repeats"
        + (" (CUDA events)" if device != "cpu" else "")
        + f"; f+b = forward + out.backward(G); host: {machine['cpu_count']} CPUs, load average "
        f"{machine['load_average_1_5_15']} before, {results['load_average_after']} after; "
        f"total {results['seconds']:.0f} s"
    )
    return "\n".join(lines)
