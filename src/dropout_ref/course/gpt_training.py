"""Training the course GPT on characters, written once for every backend (issue 15, item 4).

A backend takes part through two modules: ``dropout_ref.course.<backend>.gpt_adamw``
(``gpt_adamw(model, lr=, weight_decay=, betas=)``: the framework's AdamW, decay on
matrices only) and the step of ``dropout-ref compare --model gpt``,
``dropout_ref.course.<backend>.gpt_training.gpt_train_step(model, optimizer, idx,
targets, mask_seed=, rates=)``. Evaluation needs only :func:`dropout_ref.forward_numpy`
in eval mode; the cross-entropy is computed here, in float64.

Everything else lives here and is the same in every backend: the weights'
init (GPT-2's, drawn by NumPy from ``seed``), the batches (NumPy, from
``seed``), the dropout masks (portable, SPEC X4: step ``i`` uses
``mask_seed = seed * 2**32 + i``, unless ``portable_masks=False``), the
evaluation batches (drawn once, the same at every evaluation and in every
run of the same seed, so two runs that differ in their dropout are judged on
the same text). Metrics per
evaluation, at step 0 and every ``eval_interval`` steps:

``train_loss``, ``val_loss``
    Eval-mode (dropout off) mean cross-entropy, in nats per character, over the
    fixed evaluation batches of each split.
``train_bpc``, ``val_bpc``
    The same in bits per character (``loss / ln 2``).
``step_loss``
    Mean of the training-mode (dropout on) batch losses since the previous
    evaluation (NaN at step 0).
``seconds``
    Wall time of the training steps so far (evaluations not included).
``dropout_rates``
    Only with a ``schedule``: one ``[embd, attn, resid]`` per training step since
    the previous evaluation (empty at step 0), the rates that step used (SPEC S3),
    followed by ``drop_path`` and ``drop_head`` where a dict schedule names them
    (in that order, :func:`schedule_sites`).
"""

from __future__ import annotations

import math
import numbers
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from dropout_ref.course.backends import GPT_ADAMW_MODULE, GPT_TRAINING_MODULE
from dropout_ref.course.data.text import CharDataset, sample_batch
from dropout_ref.models.backends import GPT_MODULE
from dropout_ref.models.gpt_config import FAMILY_NAMES, SITE_NAMES, GPTConfig

#: Columns of ``metrics.csv``, in order.
GPT_METRIC_FIELDS: tuple[str, ...] = (
    "step",
    "train_loss",
    "val_loss",
    "train_bpc",
    "val_bpc",
    "step_loss",
    "seconds",
)

#: Backends whose GPT trains (numpy's GPT is a forward oracle: no gradients).
TRAINABLE = ("torch", "tensorflow", "jax", "mxnet")


def _check_int(name: str, value: Any, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer >= {low}, got {value!r}")
    if value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)


def _check_float(name: str, value: Any, low: float, high: float, open_low: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {value!r}")
    value = float(value)
    ok = (low < value if open_low else low <= value) and value < high
    if not ok:
        bracket = "(" if open_low else "["
        raise ValueError(f"{name} must be in {bracket}{low}, {high}), got {value!r}")
    return value


@dataclass(frozen=True)
class GPTTrainConfig:
    """Model sizes and hyper-parameters of one character-level run; validated on construction.

    The defaults are a small model in nanoGPT's ``shakespeare_char`` style (AdamW,
    lr 1e-3, betas (0.9, 0.99), weight decay 0.1 on matrices only, dropout 0.2) sized
    for a CPU. ``train_tokens`` keeps only the first that many characters of the
    training split: a small training set puts the model in the overfitting regime
    within a short budget. ``drop_path``/``drop_head`` switch on SPEC V3's
    DropPath and DropHead (default off). ``portable_masks=False`` leaves the masks to the
    framework's generator (seeded with ``seed``; faster, not the same across
    backends).
    """

    steps: int = 2000
    eval_interval: int = 200
    eval_batches: int = 8
    batch_size: int = 32
    block_size: int = 64
    n_layer: int = 2
    n_head: int = 4
    n_embd: int = 128
    dropout: Any = 0.2
    drop_path: Any = 0.0
    drop_head: float = 0.0
    lr: float = 1e-3
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.99
    seed: int = 0
    train_tokens: int | None = None
    portable_masks: bool = True

    def __post_init__(self) -> None:
        for name in ("steps", "eval_interval", "eval_batches", "batch_size", "block_size"):
            _check_int(name, getattr(self, name), 1)
        _check_int("seed", self.seed, 0)
        if self.seed >= 2**32:
            raise ValueError(f"seed must be below 2**32, got {self.seed}")
        if self.steps >= 2**32:
            raise ValueError(f"steps must be below 2**32, got {self.steps}")
        if not isinstance(self.portable_masks, bool):
            raise TypeError(f"portable_masks must be True or False, got {self.portable_masks!r}")
        if self.train_tokens is not None:
            _check_int("train_tokens", self.train_tokens, self.block_size + 1)
        _check_float("lr", self.lr, 0.0, math.inf, open_low=True)
        _check_float("weight_decay", self.weight_decay, 0.0, math.inf, open_low=False)
        for name in ("beta1", "beta2"):
            _check_float(name, getattr(self, name), 0.0, 1.0, open_low=False)
        # Sizes and dropout are checked by GPTConfig itself.
        self.model_config(2)

    def model_config(self, vocab_size: int) -> GPTConfig:
        """Return the :class:`GPTConfig` of this run for a vocabulary of ``vocab_size``."""
        return GPTConfig(
            vocab_size=vocab_size,
            block_size=self.block_size,
            n_layer=self.n_layer,
            n_head=self.n_head,
            n_embd=self.n_embd,
            dropout=self.dropout,
            drop_path=self.drop_path,
            drop_head=self.drop_head,
        )

    def to_dict(self) -> dict[str, Any]:
        """Return the fields (JSON-ready)."""
        return asdict(self)


#: ``--quick``: a run of seconds, offline, to see that everything works.
QUICK = {
    "steps": 60,
    "eval_interval": 20,
    "eval_batches": 2,
    "batch_size": 8,
    "block_size": 32,
    "n_layer": 1,
    "n_head": 2,
    "n_embd": 32,
}


def quick(config: GPTTrainConfig) -> GPTTrainConfig:
    """Return ``config`` with the sizes of :data:`QUICK`."""
    return replace(config, **QUICK)


def step_mask_seed(seed: int, step: int) -> int:
    """Return the portable-mask seed of training step ``step`` (1-based) of a run of ``seed``."""
    return (int(seed) << 32) + int(step)


def trainer_modules(backend: str) -> tuple[Any, Any]:
    """Return ``(gpt_adamw, gpt_training)`` modules of ``backend`` (clear errors otherwise)."""
    from dropout_ref.core.registry import get_backend

    if backend not in TRAINABLE:
        raise ValueError(
            f"the GPT trains in {', '.join(TRAINABLE)}; the {backend!r} GPT is forward only"
        )
    get_backend(backend)  # ImportError naming the install command where it is missing
    return (
        GPT_ADAMW_MODULE.load(backend),
        GPT_TRAINING_MODULE.load(backend),
    )


def eval_loss(model: Any, x: np.ndarray, y: np.ndarray) -> float:
    """Return the eval-mode mean cross-entropy of ``model`` on a batch, in nats (float64)."""
    from dropout_ref import forward_numpy

    logits = forward_numpy(model, x, training=False).astype(np.float64)
    top = logits.max(axis=-1, keepdims=True)
    log_z = top[..., 0] + np.log(np.exp(logits - top).sum(axis=-1))
    picked = np.take_along_axis(logits, y[..., None], axis=-1)[..., 0]
    return float(np.mean(log_z - picked))


def schedule_sites(schedule: Any) -> tuple[str, ...]:
    """Return the rate names a schedule drives, in ``dropout_rates`` order (SPEC S3, V3).

    One schedule (not a dict) drives X2's sites, ``embd``, ``attn`` and ``resid``;
    DropPath and DropHead keep the config's rates. A dict names X2's three sites and
    may add ``drop_path`` and ``drop_head``, which it then drives too.
    """
    from collections.abc import Mapping

    if not isinstance(schedule, Mapping):
        return SITE_NAMES
    return SITE_NAMES + tuple(name for name in FAMILY_NAMES if name in schedule)


def gpt_class(backend: str) -> Any:
    """Return the ``GPT`` class of ``backend``."""
    from dropout_ref.core.registry import get_backend

    get_backend(backend)
    return GPT_MODULE.load(backend).GPT


def bits(nats: float) -> float:
    """Convert a loss in nats to bits."""
    return nats / math.log(2.0)


def train_gpt(
    backend: str,
    data: CharDataset,
    config: GPTTrainConfig = GPTTrainConfig(),
    *,
    progress: bool = True,
    on_eval: Callable[[dict[str, float], Any], None] | None = None,
    schedule: Any = None,
) -> tuple[Any, list[dict[str, float]]]:
    """Train a character GPT in ``backend`` and return ``(model, metrics rows)``.

    Parameters
    ----------
    backend : str
        One of :data:`TRAINABLE`.
    data : CharDataset
        Text, vocabulary and split.
    config : GPTTrainConfig, optional
        Sizes and hyper-parameters.
    progress : bool, optional
        Show a rich progress bar.
    on_eval : callable, optional
        ``on_eval(row, model)`` after every evaluation (to write metrics and a
        checkpoint as the run goes).
    schedule : schedule or dict, optional
        Dropout rates per training step (SPEC S3, :mod:`dropout_ref.schedules`):
        one schedule for X2's sites or ``{"embd": ..., "attn": ..., "resid": ...}``,
        optionally with ``"drop_path"`` (the rate ``r`` of ``linspace(0, r, n_layer)``)
        and ``"drop_head"`` (SPEC V3), called with the 0-based step number. Each
        step's rates, rounded to float32 so every backend applies the same value,
        go to the step as ``rates=``
        (runtime rates, S1: no rebuild, no recompilation) and into the rows'
        ``dropout_rates``.

    Returns
    -------
    tuple
        The trained model and one metrics dict per evaluation (module docstring).

    """
    from dropout_ref.course.training import progress_bar
    from dropout_ref.schedules import as_site_schedules, rates_at

    names = schedule_sites(schedule)
    sites = None if schedule is None else as_site_schedules(schedule, names)
    adamw, steps = trainer_modules(backend)
    model_config = config.model_config(data.vocab_size)
    model = gpt_class(backend)(model_config, rng=config.seed)
    if not config.portable_masks:
        from dropout_ref.core.registry import get_backend

        get_backend(backend).arrays.seed_global(config.seed)
    optimizer = adamw.gpt_adamw(
        model, lr=config.lr, weight_decay=config.weight_decay, betas=(config.beta1, config.beta2)
    )
    train_ids = data.train if config.train_tokens is None else data.train[: config.train_tokens]
    batch_rng = np.random.default_rng([config.seed, 2])
    eval_rng = np.random.default_rng([config.seed, 3])
    eval_sets = {
        split: [
            sample_batch(ids, config.batch_size, config.block_size, eval_rng)
            for _ in range(config.eval_batches)
        ]
        for split, ids in (("train", train_ids), ("val", data.val))
    }

    def evaluate(step: int, step_losses: list[float], seconds: float) -> dict[str, float]:
        losses = {
            split: float(np.mean([eval_loss(model, x, y) for x, y in batches]))
            for split, batches in eval_sets.items()
        }
        return {
            "step": step,
            "train_loss": losses["train"],
            "val_loss": losses["val"],
            "train_bpc": bits(losses["train"]),
            "val_bpc": bits(losses["val"]),
            "step_loss": float(np.mean(step_losses)) if step_losses else float("nan"),
            "seconds": seconds,
        }

    rows: list[dict[str, float]] = []
    seconds = 0.0
    step_losses: list[float] = []
    step_rates: list[list[float]] = []

    def record(row: dict[str, Any]) -> dict[str, Any]:
        if sites is not None:
            row["dropout_rates"] = list(step_rates)
            step_rates.clear()
        rows.append(row)
        return row

    with progress_bar(progress) as bar:
        task = bar.add_task(f"{backend} GPT", total=config.steps)
        record(evaluate(0, [], 0.0))
        if on_eval is not None:
            on_eval(rows[-1], model)
        for step in range(1, config.steps + 1):
            x, y = sample_batch(train_ids, config.batch_size, config.block_size, batch_rng)
            start = time.perf_counter()
            mask_seed = step_mask_seed(config.seed, step) if config.portable_masks else None
            rates = None
            if sites is not None:
                now = rates_at(sites, step - 1)
                rates = {site: float(np.float32(now[site])) for site in names}
                step_rates.append([rates[site] for site in names])
            step_losses.append(
                steps.gpt_train_step(model, optimizer, x, y, mask_seed=mask_seed, rates=rates)
            )
            seconds += time.perf_counter() - start
            bar.advance(task)
            if step % config.eval_interval == 0 or step == config.steps:
                row = record(evaluate(step, step_losses, seconds))
                step_losses = []
                bar.update(
                    task,
                    description=(
                        f"{backend} GPT step {step}: train {row['train_bpc']:.3f} "
                        f"val {row['val_bpc']:.3f} bits/char"
                    ),
                )
                if on_eval is not None:
                    on_eval(row, model)
    return model, rows
