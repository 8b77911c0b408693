"""The course's training loop, written once for every backend (SPEC T1, T3).

A backend takes part through two functions in ``dropout_ref.<backend>.training``:

- ``sgd_step(model, images, labels, lr, mask_seed=None, rates=None) -> float``:
  one SGD step on the mean softmax cross-entropy over the batch, in training
  mode, with the two hidden dropouts at ``rates`` when given (a schedule's,
  SPEC S3); returns the batch loss.
- ``predict(model, images) -> numpy.ndarray``: eval-mode logits.

Everything else (epochs, minibatches, metrics, progress, files, plot) lives
here. Metrics per epoch:

``train_loss``
    Mean over the epoch's batches of the training-mode (dropout on) batch loss,
    weighted by batch size, as d2l's ``train_ch3`` reports it.
``train_acc``, ``test_acc``
    Eval-mode accuracy on the whole training and test set after the epoch.
    (d2l's ``train_acc`` counts the dropout-on predictions made during the
    epoch; the step interface returns only the loss, and the eval-mode
    figure is the one that does not depend on the masks.)
``seconds``
    Wall time of the epoch's SGD steps (evaluation not included).
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dropout_ref.course.file_modes import apply_default_mode

#: The course's hyper-parameters for Fashion-MNIST (SPEC T1).
COURSE_EPOCHS = 10
COURSE_LR = 0.5
COURSE_BATCH_SIZE = 256

#: Defaults per data set. Fashion-MNIST keeps the course's (T1). The offline
#: digits set has 1438 training images, so batch 256 gives 6 steps an epoch
#: and 10 epochs stay far below 0.95: batch 64 (23 steps an epoch) for 40
#: epochs keeps lr 0.5 and the course's dropout 0.2/0.5 and ends above 0.95
#: test accuracy in every backend (docs/training.md has the measured
#: figures). Batch 32 learns faster but lr 0.5 on so small a batch makes the
#: test accuracy jump by several points from one epoch to the next.
DATASET_DEFAULTS: dict[str, dict[str, float]] = {
    "fashion-mnist": {"epochs": COURSE_EPOCHS, "lr": COURSE_LR, "batch_size": COURSE_BATCH_SIZE},
    "digits": {"epochs": 40, "lr": COURSE_LR, "batch_size": 64},
}

#: Names of the per-epoch metrics, in file column order.
METRIC_FIELDS: tuple[str, ...] = ("epoch", "train_loss", "train_acc", "test_acc", "seconds")

#: The MLP's dropout sites, in forward order (a schedule may name each, SPEC S3).
SCHEDULE_SITES: tuple[str, str] = ("dropout1", "dropout2")

#: Batch size used for evaluation only (memory bound, does not change results).
EVAL_BATCH_SIZE = 2048


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of one run (defaults: the course's, SPEC T1).

    Parameters
    ----------
    epochs : int
        Passes over the training set.
    lr : float
        SGD learning rate.
    batch_size : int
        Minibatch size.
    seed : int
        Seeds the weight init, the shuffling and the framework's global
        dropout generator (D9), so a run is reproducible.

    """

    epochs: int = COURSE_EPOCHS
    lr: float = COURSE_LR
    batch_size: int = COURSE_BATCH_SIZE
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        lr = self.lr
        if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not (0 < lr < float("inf")):
            raise ValueError(f"lr must be a positive finite number, got {lr!r}")
        seed = self.seed
        # 2**32 - 1 is the largest seed numpy.random.seed (hence seed_global) accepts.
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
            raise ValueError(f"seed must be an integer in [0, 2**32), got {seed!r}")


def step_functions(backend: str) -> Any:
    """Return ``dropout_ref.course.<backend>.training`` (``sgd_step`` and ``predict``)."""
    from dropout_ref.core.registry import get_backend
    from dropout_ref.course.backends import TRAINING_MODULE

    get_backend(backend)  # clear ImportError / ValueError for missing or unknown backends
    return TRAINING_MODULE.load(backend)


def accuracy(
    predict: Callable[[Any, np.ndarray], np.ndarray],
    model: Any,
    images: np.ndarray,
    labels: np.ndarray,
    batch_size: int = EVAL_BATCH_SIZE,
) -> float:
    """Return the fraction of ``images`` whose eval-mode argmax logit equals the label."""
    if len(images) == 0:
        return float("nan")
    correct = 0
    for start in range(0, len(images), batch_size):
        logits = predict(model, images[start : start + batch_size])
        correct += int((np.argmax(logits, axis=1) == labels[start : start + batch_size]).sum())
    return correct / len(images)


def train(
    backend: str,
    model: Any,
    dataset: Any,
    config: TrainConfig = TrainConfig(),
    *,
    progress: bool = True,
    on_epoch: Callable[[dict[str, float]], None] | None = None,
    schedule: Any = None,
) -> list[dict[str, float]]:
    """Train ``model`` with minibatch SGD and return one metrics dict per epoch (SPEC T1, T3).

    Parameters
    ----------
    backend : str
        Backend whose ``training`` module drives ``model``.
    model : MLP
        That backend's ``MLP``; trained in place.
    dataset : dropout_ref.course.data.Dataset
        ``train_images``, ``train_labels``, ``test_images``, ``test_labels``.
    config : TrainConfig, optional
        Hyper-parameters; the course's by default.
    progress : bool, optional
        Show a rich progress bar per epoch.
    on_epoch : callable, optional
        Called with each epoch's metrics as soon as they are known.
    schedule : schedule or dict, optional
        Dropout rates per SGD step (SPEC S3, :mod:`dropout_ref.schedules`): one
        schedule for both hidden dropouts or ``{"dropout1": ..., "dropout2": ...}``.
        Each step's rates, rounded to float32 so every backend applies the same
        value, go to the step as runtime rates (S1: no rebuild, no recompilation)
        and into the epoch's ``dropout_rates`` (one ``[rate1, rate2]`` per step).

    Returns
    -------
    list of dict
        Per epoch: ``epoch`` (1-based), ``train_loss``, ``train_acc``,
        ``test_acc``, ``seconds`` (see the module docstring).

    """
    from dropout_ref.core.registry import get_backend
    from dropout_ref.course.data import minibatches
    from dropout_ref.schedules import as_site_schedules, rates_at

    steps = step_functions(backend)
    sites = None if schedule is None else as_site_schedules(schedule, SCHEDULE_SITES)
    step_index = 0
    get_backend(backend).arrays.seed_global(config.seed)
    shuffle_rng = np.random.default_rng([config.seed, 1])
    n_train = len(dataset.train_labels)
    n_batches = -(-n_train // config.batch_size)
    results: list[dict[str, float]] = []
    with progress_bar(progress) as bar:
        for epoch in range(1, config.epochs + 1):
            task = bar.add_task(f"{backend} epoch {epoch}/{config.epochs}", total=n_batches)
            loss_sum = 0.0
            start = time.perf_counter()
            batches = minibatches(
                dataset.train_images,
                dataset.train_labels,
                config.batch_size,
                shuffle=True,
                rng=shuffle_rng,
            )
            epoch_rates: list[list[float]] = []
            for images, labels in batches:
                if sites is None:
                    loss = steps.sgd_step(model, images, labels, config.lr)
                else:
                    now = rates_at(sites, step_index)
                    rates = [float(np.float32(now[site])) for site in SCHEDULE_SITES]
                    epoch_rates.append(rates)
                    loss = steps.sgd_step(model, images, labels, config.lr, rates=tuple(rates))
                step_index += 1
                loss_sum += loss * len(labels)
                bar.advance(task)
            seconds = time.perf_counter() - start
            row = {
                "epoch": epoch,
                "train_loss": loss_sum / n_train,
                "train_acc": accuracy(
                    steps.predict, model, dataset.train_images, dataset.train_labels
                ),
                "test_acc": accuracy(
                    steps.predict, model, dataset.test_images, dataset.test_labels
                ),
                "seconds": seconds,
            }
            if sites is not None:
                row["dropout_rates"] = epoch_rates
            bar.update(
                task,
                description=(
                    f"{backend} epoch {epoch}/{config.epochs} loss {row['train_loss']:.3f} "
                    f"train {row['train_acc']:.3f} test {row['test_acc']:.3f}"
                ),
            )
            results.append(row)
            if on_epoch is not None:
                on_epoch(row)
    return results


class NoProgress:
    """Stand-in for rich's Progress when no bar is wanted, or rich is not installed."""

    def __enter__(self) -> NoProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def add_task(self, *args: Any, **kwargs: Any) -> int:
        """Return task id 0; nothing is drawn."""
        return 0

    def advance(self, *args: Any, **kwargs: Any) -> None:
        """Do nothing."""
        return None

    def update(self, *args: Any, **kwargs: Any) -> None:
        """Do nothing."""
        return None


def progress_bar(enabled: bool, console: Any = None) -> Any:
    """Return a rich progress bar (on ``console`` if given), or a silent stand-in."""
    if not enabled:
        return NoProgress()
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never a part.

    The bytes go to a temporary file in the same directory, which is flushed,
    fsynced and then renamed over ``path`` (``os.replace`` is atomic on POSIX
    and Windows). On any error the temporary file is removed and ``path`` is
    left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        apply_default_mode(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def metrics_json(
    results: Sequence[dict[str, float]],
    meta: dict[str, Any] | None = None,
    rows: str = "epochs",
) -> bytes:
    """Return the JSON document written to ``metrics.json``: ``{"meta": ..., rows: [...]}``."""
    document = {"meta": dict(meta or {}), rows: [dict(row) for row in results]}
    return (json.dumps(document, indent=2, allow_nan=True) + "\n").encode()


def metrics_csv(
    results: Iterable[dict[str, float]], fields: Sequence[str] = METRIC_FIELDS
) -> bytes:
    """Return the CSV written to ``metrics.csv``: columns ``fields``, one row per result."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for row in results:
        writer.writerow({field: row[field] for field in fields})
    return buffer.getvalue().encode()


def write_metrics(
    results: Sequence[dict[str, float]],
    out_dir: str | os.PathLike[str],
    meta: dict[str, Any] | None = None,
    fields: Sequence[str] = METRIC_FIELDS,
    rows: str = "epochs",
) -> tuple[Path, Path]:
    """Write ``metrics.json`` and ``metrics.csv`` into ``out_dir``, each atomically (SPEC T3).

    ``fields`` are the CSV's columns and ``rows`` the JSON key of the rows (the
    MLP's per-epoch ones by default).

    Both documents are rendered in memory before either file is touched, so
    a bad value leaves both files as they were.

    Returns
    -------
    tuple of pathlib.Path
        The JSON and CSV paths.

    """
    out = Path(out_dir)
    json_bytes, csv_bytes = metrics_json(results, meta, rows), metrics_csv(results, fields)
    return (
        atomic_write_bytes(out / "metrics.json", json_bytes),
        atomic_write_bytes(out / "metrics.csv", csv_bytes),
    )


def plot_curves(
    results: Sequence[dict[str, float]],
    path: str | os.PathLike[str],
    title: str = "",
    x: str = "epoch",
    series: Sequence[tuple[str, str]] = (
        ("train_loss", "-"), ("train_acc", "m--"), ("test_acc", "g-.")
    ),
    rate_sites: Sequence[str] = SCHEDULE_SITES,
) -> Path:
    """Draw train loss, train accuracy and test accuracy per epoch, like the book's plot (T3).

    Drawn on an Agg canvas of its own (no display needed, the caller's matplotlib
    backend untouched); the PNG is written atomically. ``x`` and ``series``
    (key, matplotlib style) choose other columns of ``results``. Rows with
    ``dropout_rates`` (one list per step, in the order of ``rate_sites``) add each
    site's rate per step on a second axis: spread over their epoch when ``x`` is
    ``"epoch"``, else at steps ``previous row's x + 1, ..., row's x``.
    """
    from dropout_ref.course.png import figure_png, new_figure

    epochs = [row[x] for row in results]
    figure = new_figure(figsize=(4.5, 3.2), dpi=120)
    axes = figure.add_subplot()
    for key, style in series:
        axes.plot(epochs, [row[key] for row in results], style, label=key.replace("_", " "))
    axes.set_xlabel(x)
    axes.set_xlim(min(epochs, default=1) - 0.5, max(epochs, default=1) + 0.5)
    axes.grid(True, alpha=0.3)
    axes.legend()
    if results and "dropout_rates" in results[0]:
        # The schedule's rates per step (SPEC S3), steps spread over their epoch.
        rate_axes = axes.twinx()
        for k, (site, style) in enumerate(zip(rate_sites, ("c:", "y:", "k:"), strict=False)):
            xs, ys = [], []
            previous = 0
            for row in results:
                per_step = row["dropout_rates"]
                for i, rates in enumerate(per_step):
                    if x == "epoch":
                        xs.append(row["epoch"] - 0.5 + (i + 0.5) / len(per_step))
                    else:
                        xs.append(previous + i + 1)
                    ys.append(rates[k])
                previous = row[x]
            rate_axes.plot(xs, ys, style, label=f"{site} rate")
        rate_axes.set_ylabel("dropout rate")
        rate_axes.set_ylim(0.0, 1.0)
        rate_axes.legend(loc="upper center", fontsize=7)
    if title:
        axes.set_title(title, fontsize=9)
    return atomic_write_bytes(path, figure_png(figure))
