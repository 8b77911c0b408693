"""Checkpoints of the course GPT, framework-neutral: ``weights.npz`` and ``config.json``.

``weights.npz`` holds the Hugging Face-named weight dict (SPEC X5) exactly as
``GPT.get_weights()`` returns it, so a checkpoint written by one backend loads
in every other; ``config.json`` holds ``GPTConfig.to_dict()`` under ``"config"``
and whatever else the writer adds (the vocabulary of a character model under
``"chars"``, the step, the data set). Both files are written atomically, the
weights first, so a reader never pairs a new config with old weights of
another shape.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from dropout_ref.course.training import atomic_write_bytes
from dropout_ref.models.gpt_config import GPTConfig, validate_weights

WEIGHTS_FILE = "weights.npz"
CONFIG_FILE = "config.json"


class CheckpointError(ValueError):
    """A checkpoint folder is missing a file or holds one that does not fit; names the file."""


def save_checkpoint(
    folder: str | os.PathLike[str],
    config: GPTConfig,
    weights: dict[str, np.ndarray],
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write ``weights.npz`` and ``config.json`` into ``folder``; return the folder.

    The weights are checked against ``config`` first (SPEC X5), so nothing is
    written for weights that would not load.
    """
    checked = validate_weights(config, weights)
    buffer = io.BytesIO()
    np.savez(buffer, **checked)
    document = {**(extra or {}), "config": config.to_dict()}
    text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    folder = Path(folder)
    atomic_write_bytes(folder / WEIGHTS_FILE, buffer.getvalue())
    atomic_write_bytes(folder / CONFIG_FILE, text.encode("utf-8"))
    return folder


def load_checkpoint(
    folder: str | os.PathLike[str],
) -> tuple[GPTConfig, dict[str, np.ndarray], dict[str, Any]]:
    """Read a checkpoint: ``(config, weights, extra)``.

    Raises
    ------
    CheckpointError
        If a file is missing or unreadable, or the weights do not fit the config;
        the message names the file.

    """
    folder = Path(folder)
    config_path, weights_path = folder / CONFIG_FILE, folder / WEIGHTS_FILE
    try:
        document = json.loads(config_path.read_text(encoding="utf-8"))
        config = GPTConfig(**document.pop("config"))
    except FileNotFoundError:
        raise CheckpointError(f"{config_path} does not exist: not a GPT checkpoint") from None
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
        raise CheckpointError(f"{config_path} is not a GPT checkpoint config ({exc})") from None
    try:
        with np.load(weights_path, allow_pickle=False) as archive:
            raw = {name: archive[name] for name in archive.files}
    except FileNotFoundError:
        raise CheckpointError(f"{weights_path} does not exist: not a GPT checkpoint") from None
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{weights_path} is not a weights archive ({exc})") from None
    try:
        weights = validate_weights(config, raw)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{weights_path} does not fit {config_path}: {exc}") from None
    return config, weights, document
