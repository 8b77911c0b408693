"""The doors of ``portable_masks`` (SPEC P8): every way code written for a framework drops units.

Each backend's ``dropout_ref.<backend>.intercept`` module declares its doors in one
table, ``DOORS``: a :class:`Door` per public API, with what the context does with it
(a numbered site, or a refusal that names it). The docs' door table, the tests that
make each door's framework generator raise inside the context, and the port check's
site tables all read these tables; a new door is one entry here per backend, not a
special case in several places. This module imports no framework.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from dropout_ref.core.contract import ToolModule

#: What a context does with a door's training-mode call.
Handling = Literal["site", "refused"]


@dataclass(frozen=True)
class Door:
    """One door through which a framework drops units, as ``portable_masks`` treats it.

    Parameters
    ----------
    name : str
        The public API users call (``"torch.nn.functional.dropout"``,
        ``"keras.layers.Dropout"``).
    handling : {"site", "refused"}
        ``"site"``: a training-mode call is numbered and draws P8's portable mask;
        ``"refused"``: it raises inside the context, naming the door (P8: never native
        masks silently).
    detail : str
        When it is a site and with which noise shape, or why it is refused.
    """

    name: str
    handling: Handling
    detail: str

    def __post_init__(self) -> None:
        if self.handling not in ("site", "refused"):
            raise ValueError(
                f"Door handling must be 'site' or 'refused', got {self.handling!r} ({self.name})"
            )


def refused_door(door: str, context: str, why: str) -> NotImplementedError:
    """Return the error a refused door raises in training mode inside a context (SPEC P8).

    Parameters
    ----------
    door : str
        The API the user called (``"keras.layers.AlphaDropout"``).
    context : str
        The context it was called in (``"dropout_ref.tensorflow.portable_masks"``).
    why : str
        Why no portable mask can stand in for its own (``"it is not inverted Bernoulli
        dropout"``).
    """
    return NotImplementedError(
        f"{door} in training mode inside {context}: {why}, so the context cannot give it "
        "portable masks and refuses to let it draw native ones (SPEC P8; every door: "
        "docs/doors.md, `dropout-ref doors`)"
    )


#: ``dropout_ref.<backend>.intercept``: the backend's ``portable_masks`` and its door table.
INTERCEPT_MODULE = ToolModule(
    tool="portable masks",
    pattern="dropout_ref.{backend}.intercept",
    backends=("torch", "tensorflow", "mxnet", "jax"),
    required={
        "portable_masks": "(seed) -> a PortableMasks context (SPEC P8)",
        "DOORS": "tuple of dropout_ref.core.doors.Door: every door the context handles",
    },
)


def door_table_markdown(backend: str, doors: tuple[Door, ...]) -> str:
    """Return ``backend``'s door table as the Markdown section of ``docs/doors.md``.

    The page is these sections, one per backend, written from the ``DOORS`` tables
    (``dropout-ref doors --markdown``); a test holds the page to the tables.
    """
    lines = [
        f"## {backend}",
        "",
        "| door | handling | detail |",
        "|---|---|---|",
    ]
    for door in doors:
        detail = door.detail.replace("|", "\\|")
        lines.append(f"| `{door.name}` | {door.handling} | {detail} |")
    return "\n".join(lines) + "\n"
