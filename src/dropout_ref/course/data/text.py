"""Character-level text for the GPT of the course (issue 15, item 4): no network, no files.

The corpus is the English prose of CPython's own documentation topics,
``pydoc_data.topics.topics`` (the text ``help("FOR")`` prints), which every
CPython installation ships: about 465 KB and 103 distinct characters on
CPython 3.11. The text is those topics' values joined by a newline in sorted
key order, so it is the same on every machine with the same CPython minor
version; :attr:`CharDataset.sha256` names the exact text a run used.

>>> from dropout_ref.course.data.text import load_char_dataset
>>> data = load_char_dataset()
>>> data.decode(data.encode("for x in y"))
'for x in y'
"""

from __future__ import annotations

import hashlib
import numbers
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: Fraction of the text, at its end, held out for validation (nanoGPT's char split).
VAL_FRACTION = 0.1
#: Name of the corpus in metrics and checkpoints.
CORPUS = "pydoc_data.topics"


def topics_text() -> str:
    """Return the corpus: the ``pydoc_data.topics`` entries in sorted key order, one per line."""
    from pydoc_data.topics import topics

    return "\n".join(topics[key] for key in sorted(topics))


@dataclass(frozen=True)
class CharVocab:
    """A character vocabulary: token id ``i`` is ``chars[i]``.

    Parameters
    ----------
    chars : str
        The distinct characters, in token-id order.

    """

    chars: str
    _index: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.chars, str) or not self.chars:
            raise ValueError(f"chars must be a non-empty str, got {self.chars!r}")
        if len(set(self.chars)) != len(self.chars):
            raise ValueError("chars must not repeat a character")
        object.__setattr__(self, "_index", {c: i for i, c in enumerate(self.chars)})

    @classmethod
    def from_text(cls, text: str) -> CharVocab:
        """Return the vocabulary of ``text``: its distinct characters in code-point order."""
        return cls("".join(sorted(set(text))))

    @property
    def size(self) -> int:
        """Number of tokens."""
        return len(self.chars)

    def encode(self, text: str) -> np.ndarray:
        """Return the token ids of ``text`` as ``int64``.

        Raises
        ------
        ValueError
            If ``text`` holds a character outside the vocabulary (it is named).

        """
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        try:
            return np.fromiter((self._index[c] for c in text), dtype=np.int64, count=len(text))
        except KeyError as exc:
            raise ValueError(
                f"character {exc.args[0]!r} is not in the vocabulary of {self.size} characters"
            ) from None

    def decode(self, ids: Sequence[int] | np.ndarray) -> str:
        """Return the text of the token ids ``ids`` (a 1-D sequence).

        Raises
        ------
        ValueError
            If an id is outside ``[0, size)`` (the first such id is named).

        """
        flat = np.asarray(ids)
        if flat.ndim != 1 or (flat.size and not np.issubdtype(flat.dtype, np.integer)):
            raise ValueError(f"ids must be a 1-D sequence of ints, got shape {flat.shape}")
        bad = np.flatnonzero((flat < 0) | (flat >= self.size))
        if bad.size:
            raise ValueError(
                f"token id {int(flat[bad[0]])} at position {int(bad[0])} is outside "
                f"[0, {self.size})"
            )
        return "".join(self.chars[int(i)] for i in flat)


@dataclass(frozen=True)
class CharDataset:
    """A text, its vocabulary and its fixed train/validation split.

    Attributes
    ----------
    vocab : CharVocab
        Characters of the whole text.
    train, val : numpy.ndarray
        ``int64`` token ids: the first ``1 - val_fraction`` of the text, and the rest.
    sha256 : str
        Hex digest of the UTF-8 text, so a run records which text it saw.
    source : str
        Where the text came from.

    """

    vocab: CharVocab
    train: np.ndarray
    val: np.ndarray
    sha256: str
    source: str

    @property
    def vocab_size(self) -> int:
        """Number of distinct characters."""
        return self.vocab.size

    def encode(self, text: str) -> np.ndarray:
        """Token ids of ``text`` (:meth:`CharVocab.encode`)."""
        return self.vocab.encode(text)

    def decode(self, ids: Sequence[int] | np.ndarray) -> str:
        """Text of ``ids`` (:meth:`CharVocab.decode`)."""
        return self.vocab.decode(ids)

    def split(self, name: str) -> np.ndarray:
        """Return the ids of split ``name``: ``"train"`` or ``"val"``."""
        if name == "train":
            return self.train
        if name == "val":
            return self.val
        raise ValueError(f"split must be 'train' or 'val', got {name!r}")

    def meta(self) -> dict[str, Any]:
        """Facts for metrics files and checkpoints (JSON-serialisable)."""
        return {
            "corpus": self.source,
            "sha256": self.sha256,
            "python": ".".join(map(str, sys.version_info[:3])),
            "chars": self.vocab.chars,
            "train_tokens": int(self.train.size),
            "val_tokens": int(self.val.size),
        }


def char_dataset(
    text: str, val_fraction: float = VAL_FRACTION, source: str = "text"
) -> CharDataset:
    """Return the :class:`CharDataset` of ``text``: the last ``val_fraction`` is validation.

    Raises
    ------
    ValueError
        If ``val_fraction`` is not in ``(0, 1)`` or a split would hold fewer than two
        characters (no window of one input and one target fits).

    """
    if isinstance(val_fraction, bool) or not isinstance(val_fraction, numbers.Real):
        raise TypeError(f"val_fraction must be a float in (0, 1), got {val_fraction!r}")
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction!r}")
    vocab = CharVocab.from_text(text)
    ids = vocab.encode(text)
    n_train = round(len(ids) * (1 - val_fraction))
    train, val = ids[:n_train], ids[n_train:]
    if len(train) < 2 or len(val) < 2:
        raise ValueError(
            f"a text of {len(ids)} characters split at val_fraction={val_fraction!r} leaves "
            f"{len(train)} training and {len(val)} validation characters; each needs 2"
        )
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    return CharDataset(vocab=vocab, train=train, val=val, sha256=digest, source=source)


def load_char_dataset(val_fraction: float = VAL_FRACTION) -> CharDataset:
    """Return the course's text: :func:`topics_text`, split at ``val_fraction`` from the end."""
    return char_dataset(topics_text(), val_fraction, source=CORPUS)


def sample_batch(
    ids: np.ndarray, batch_size: int, block_size: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Draw ``batch_size`` random windows of ``block_size`` tokens and their next tokens.

    As nanoGPT's ``get_batch``: each row starts at an independent uniform position
    ``s`` in ``[0, len(ids) - block_size)``; the input is ``ids[s : s + block_size]``
    and the target ``ids[s + 1 : s + block_size + 1]``.

    Parameters
    ----------
    ids : numpy.ndarray
        1-D token ids (a split of :class:`CharDataset`).
    batch_size, block_size : int
        Rows, and tokens per row.
    rng : numpy.random.Generator
        Source of the start positions (the only randomness).

    Returns
    -------
    tuple of numpy.ndarray
        ``(x, y)``, both ``int64`` of shape ``(batch_size, block_size)``.

    Raises
    ------
    TypeError
        If ``rng`` is not a ``numpy.random.Generator`` or a size is not an int.
    ValueError
        If a size is not positive or ``ids`` is shorter than ``block_size + 1``.

    """
    for name, value in (("batch_size", batch_size), ("block_size", block_size)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise TypeError(f"{name} must be a positive int, got {value!r}")
        if value <= 0:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    ids = np.asarray(ids)
    if ids.ndim != 1 or len(ids) < block_size + 1:
        raise ValueError(
            f"ids must be 1-D with at least block_size + 1 = {block_size + 1} tokens, "
            f"got shape {ids.shape}"
        )
    starts = rng.integers(0, len(ids) - block_size, size=batch_size)
    window = starts[:, None] + np.arange(block_size + 1)
    rows = ids[window].astype(np.int64, copy=False)
    return rows[:, :-1], rows[:, 1:]
