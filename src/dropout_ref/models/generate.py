"""Text generation with top-k sampling, the same in every backend (SPEC X6).

The loop is written once, here, on NumPy arrays; a backend contributes only
its forward pass (``forward(model, idx, training=..., mask_seed=...)`` returning
logits of shape ``(B, T, vocab_size)``, by default
:func:`dropout_ref.forward_numpy`). Each step:

1. runs the model in **eval mode** (dropout off, SPEC X3) on the last
   ``block_size`` tokens and takes the last position's logits;
2. divides them by ``temperature`` and keeps the ``top_k`` largest (ties go to
   the lower token id);
3. picks a token by inverse CDF: the softmax of the kept logits (float64, on
   the host) is accumulated in token-id order and the token is the first whose
   cumulative probability exceeds ``u``.

The uniform ``u`` of token ``t`` of the continuation of row ``b`` is the
portable uniform of element ``(b, t)`` of an array of shape
``(B, max_new_tokens)`` with ``seed`` at offset 0 (SPEC P3: ``u = w / 2**32``
with ``w`` the Philox4x32-10 word of that element); for one row, element ``t``.
The draws therefore do not depend on the framework, and the same seed gives
the same tokens in every backend up to draws that fall within float32 rounding
of a CDF boundary. ``top_k=1`` is greedy decoding.

Dropout and sampling are independent sources of randomness: dropout
(training) regularises the weights; top-k sampling (inference) varies the
text. With ``mc_dropout=False`` (the default) the only randomness of
:func:`generate` is ``seed``. ``mc_dropout=True`` runs the forward passes in
training mode (Monte Carlo dropout), an explicit opt-in: with ``mask_seed=s``
step ``t`` uses the portable masks of seed ``(s + t) mod 2**64``, so it too is
the same in every backend; with ``mask_seed=None`` the framework's own
generator draws the masks.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable
from typing import Any

import numpy as np

from dropout_ref.core.philox import numpy_words
from dropout_ref.core.validation import validate_seed

#: ``forward(model, idx, *, training, mask_seed)`` -> logits ``(B, T, vocab_size)``.
Forward = Callable[..., Any]

#: Number of 32-bit words: ``u = w / WORD_SPAN`` lies in ``[0, 1)``.
WORD_SPAN = 2.0**32


def check_top_k(top_k: Any) -> int | None:
    """Return ``top_k`` as an int (or ``None``: keep every token).

    Raises
    ------
    TypeError
        If ``top_k`` is not ``None`` or an integer (bools and floats are refused).
    ValueError
        If ``top_k < 1``.

    """
    if top_k is None:
        return None
    if isinstance(top_k, (bool, np.bool_)) or not isinstance(top_k, numbers.Integral):
        raise TypeError(f"top_k must be None or an integer >= 1, got {top_k!r}")
    if int(top_k) < 1:
        raise ValueError(f"top_k must be None or an integer >= 1, got {int(top_k)}")
    return int(top_k)


def check_temperature(temperature: Any) -> float:
    """Return ``temperature`` as a float; it must be a finite number ``> 0``.

    Raises
    ------
    TypeError, ValueError
        Naming ``temperature`` (use ``top_k=1`` for greedy decoding, not 0).

    """
    if isinstance(temperature, (bool, np.bool_)) or not isinstance(temperature, numbers.Real):
        raise TypeError(f"temperature must be a positive number, got {temperature!r}")
    value = float(temperature)
    if not (0.0 < value < float("inf")):
        raise ValueError(
            f"temperature must be a finite number > 0, got {temperature!r} "
            "(for greedy decoding use top_k=1)"
        )
    return value


def sampling_uniforms(seed: int, batch: int, steps: int) -> np.ndarray:
    """Return the uniforms of generation: ``(batch, steps)`` float64 in ``[0, 1)`` (P3, offset 0).

    Element ``(b, t)`` is ``w / 2**32`` for the Philox word of row-major element
    ``b * steps + t`` of seed ``seed``.
    """
    checked = validate_seed(seed)
    if checked is None:
        raise TypeError("seed must be an integer in [0, 2**64), got None")
    if batch * steps == 0:
        return np.zeros((batch, steps), dtype=np.float64)
    return numpy_words((batch, steps), checked, 0).astype(np.float64) / WORD_SPAN


def sample_next(
    logits: Any, uniforms: Any, temperature: float = 1.0, top_k: int | None = None
) -> np.ndarray:
    """Pick one token per row from ``logits`` by inverse CDF at ``uniforms`` (SPEC X6).

    Parameters
    ----------
    logits : array_like
        ``(B, vocab_size)`` next-token logits.
    uniforms : array_like
        ``(B,)`` numbers in ``[0, 1)``.
    temperature : float, optional
        Logits are divided by it.
    top_k : int or None, optional
        Keep only the ``top_k`` largest logits (ties to the lower token id);
        ``None`` keeps all, a ``top_k`` above ``vocab_size`` keeps all.

    Returns
    -------
    numpy.ndarray
        ``(B,)`` int64 token ids.

    Raises
    ------
    ValueError
        If the logits hold NaN, are not 2-D, or the shapes disagree.

    """
    temperature = check_temperature(temperature)
    top_k = check_top_k(top_k)
    scores = np.asarray(logits, dtype=np.float64)
    u = np.asarray(uniforms, dtype=np.float64)
    if scores.ndim != 2 or u.shape != scores.shape[:1]:
        raise ValueError(
            f"logits must be (B, vocab_size) and uniforms (B,), got {scores.shape} and {u.shape}"
        )
    if np.isnan(scores).any():
        raise ValueError("logits hold NaN: the model's output is not a distribution")
    scores = scores / temperature
    vocab = scores.shape[1]
    k = vocab if top_k is None else min(top_k, vocab)
    # A stable sort of the negated scores: equal logits keep ascending token ids.
    order = np.argsort(-scores, axis=1, kind="stable")
    kept = np.zeros(scores.shape, dtype=bool)
    np.put_along_axis(kept, order[:, :k], True, axis=1)
    top = np.take_along_axis(scores, order[:, :1], axis=1)
    weights = np.where(kept, np.exp(np.where(kept, scores - top, 0.0)), 0.0)
    cdf = np.cumsum(weights / weights.sum(axis=1, keepdims=True), axis=1)
    # The first id whose cumulative probability exceeds u: the CDF rises only at kept ids.
    choice = (cdf <= u[:, None]).sum(axis=1)
    # u above the rounded total (cdf[-1] < 1 by rounding): the last kept id.
    last_kept = vocab - 1 - np.argmax(kept[:, ::-1], axis=1)
    return np.where(choice >= vocab, last_kept, choice).astype(np.int64)


def _as_numpy_ids(idx: Any) -> np.ndarray:
    if hasattr(idx, "asnumpy"):  # MXNet NDArray
        idx = idx.asnumpy()
    elif hasattr(idx, "detach") and hasattr(idx, "cpu"):  # torch, on any device
        idx = idx.detach().cpu().numpy()
    array = np.asarray(idx)
    if array.dtype.kind not in "iu":
        raise TypeError(f"idx must hold integer token ids, got dtype {array.dtype}")
    if array.ndim != 2 or array.shape[1] == 0:
        raise ValueError(f"idx must have shape (batch, time) with time >= 1, got {array.shape}")
    return array.astype(np.int64)


def _config_of(model: Any) -> Any:
    config = getattr(model, "config", None)
    if config is None or not hasattr(config, "block_size"):
        raise TypeError(
            f"model must be a dropout_ref GPT (with .config), got {type(model).__name__}"
        )
    return config


def _default_forward(model: Any, idx: np.ndarray, *, training: bool, mask_seed: Any) -> Any:
    import dropout_ref

    return dropout_ref.forward_numpy(model, idx, training=training, mask_seed=mask_seed)


def generate(
    model: Any,
    idx: Any,
    max_new_tokens: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    *,
    seed: int = 0,
    mc_dropout: bool = False,
    mask_seed: int | None = None,
    forward: Forward | None = None,
) -> np.ndarray:
    """Continue ``idx`` by ``max_new_tokens`` tokens sampled from ``model`` (SPEC X6).

    Parameters
    ----------
    model : GPT
        A GPT of any backend (it has ``.config``, a :class:`~dropout_ref.GPTConfig`).
    idx : array_like
        ``(B, T)`` integer token ids, the prompt; a NumPy array or the backend's
        tensor. Longer than ``block_size`` is fine: each step sees the last
        ``block_size`` tokens.
    max_new_tokens : int
        Number of tokens to append (``>= 0``).
    temperature : float, optional
        Divides the logits (``> 0``).
    top_k : int or None, optional
        Sample among the ``top_k`` most likely tokens only; ``1`` is greedy.
    seed : int, optional
        Seed of the sampler's portable uniforms, in ``[0, 2**64)``.
    mc_dropout : bool, optional
        Run the forward passes in training mode (dropout on). Off by default:
        generation runs in eval mode.
    mask_seed : int or None, optional
        With ``mc_dropout``: step ``t`` uses portable masks of seed
        ``(mask_seed + t) mod 2**64``; ``None`` leaves the masks to the
        framework's generator. Refused without ``mc_dropout``.
    forward : callable, optional
        ``forward(model, idx, *, training, mask_seed)`` -> ``(B, T, V)`` logits;
        :func:`dropout_ref.forward_numpy` by default.

    Returns
    -------
    numpy.ndarray
        ``(B, T + max_new_tokens)`` int64: the prompt and its continuation.

    Raises
    ------
    TypeError, ValueError
        For a bad ``idx`` (dtype, shape, ids outside ``[0, vocab_size)``),
        ``max_new_tokens``, ``temperature``, ``top_k``, ``seed`` or ``mask_seed``;
        the message names the argument.

    """
    config = _config_of(model)
    ids = _as_numpy_ids(idx)
    if ids.min() < 0 or ids.max() >= config.vocab_size:
        bad = int(ids.min()) if ids.min() < 0 else int(ids.max())
        raise ValueError(
            f"idx holds token id {bad}, outside [0, vocab_size={config.vocab_size})"
        )
    if isinstance(max_new_tokens, (bool, np.bool_)) or not isinstance(
        max_new_tokens, numbers.Integral
    ):
        raise TypeError(f"max_new_tokens must be an integer >= 0, got {max_new_tokens!r}")
    if max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be an integer >= 0, got {max_new_tokens}")
    temperature = check_temperature(temperature)
    top_k = check_top_k(top_k)
    if not isinstance(mc_dropout, (bool, np.bool_)):
        raise TypeError(f"mc_dropout must be True or False, got {mc_dropout!r}")
    mask_seed = validate_seed(mask_seed, "mask_seed")
    if mask_seed is not None and not mc_dropout:
        raise ValueError(
            "mask_seed is for MC dropout only: generation runs in eval mode (dropout off) "
            "unless mc_dropout=True"
        )
    uniforms = sampling_uniforms(seed, ids.shape[0], int(max_new_tokens))
    run = _default_forward if forward is None else forward
    for t in range(int(max_new_tokens)):
        window = ids[:, -config.block_size :]
        step_seed = None if mask_seed is None else (mask_seed + t) % 2**64
        logits = np.asarray(run(model, window, training=bool(mc_dropout), mask_seed=step_seed))
        token = sample_next(logits[:, -1, :], uniforms[:, t], temperature, top_k)
        ids = np.concatenate([ids, token[:, None]], axis=1)
    return ids
