"""Write the API reference pages (``docs/api/``) from the package's source tree.

Run by the ``gen-files`` plugin on every ``mkdocs build``. One page per top-level group of
``src/dropout_ref`` (a subpackage such as ``core`` or ``torch``; the top-level modules share the
first page), each holding a ``::: module`` block per public module, read statically by
mkdocstrings-python (griffe): no framework needs to be installed. The tree is walked, not listed,
so a module that moves or appears is documented without editing this file; ``GROUP_ORDER`` only
orders the pages.
"""

from __future__ import annotations

from pathlib import Path

import mkdocs_gen_files

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "dropout_ref"
#: Page order, by what a reader looks for first; groups not named here follow alphabetically.
GROUP_ORDER = [
    PACKAGE, "core", "kernels", "numpy", "torch", "tensorflow", "mxnet", "jax", "array_api",
    "models", "porting", "course", "conformance", "bench", "cli",
]


def public_modules() -> dict[str, list[str]]:
    """Map each group name to the dotted names of its public modules, in path order."""
    groups: dict[str, list[str]] = {}
    for path in sorted((SRC / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        if any(part.startswith("_") for part in parts):
            continue  # private modules and __main__
        group = parts[1] if len(parts) > 1 and (SRC / PACKAGE / parts[1]).is_dir() else PACKAGE
        groups.setdefault(group, []).append(".".join(parts))
    return groups


def page_order(groups: dict[str, list[str]]) -> list[str]:
    """Order the groups: those in ``GROUP_ORDER`` first, the rest alphabetically."""
    known = [g for g in GROUP_ORDER if g in groups]
    return known + sorted(set(groups) - set(known))


def write_pages() -> None:
    """Write one page per group and the section's navigation (``api/SUMMARY.md``)."""
    groups = public_modules()
    summary = []
    for group in page_order(groups):
        title = PACKAGE if group == PACKAGE else f"{PACKAGE}.{group}"
        page = f"api/{group}.md"
        with mkdocs_gen_files.open(page, "w") as out:
            out.write(f"# `{title}`\n\n")
            for module in groups[group]:
                out.write(f"::: {module}\n\n")
        summary.append(f"* [{title}]({group}.md)\n")
    with mkdocs_gen_files.open("api/SUMMARY.md", "w") as out:
        out.writelines(summary)


write_pages()
