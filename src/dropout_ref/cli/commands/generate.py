"""``dropout-ref generate``: sample text from a character GPT checkpoint (SPEC X6).

The checkpoint is a folder written by ``dropout-ref train --model gpt``
(``weights.npz``, ``config.json`` with the vocabulary); any backend loads it.
The same ``--seed`` gives the same text in every backend.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dropout_ref.core.registry import known_backends


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``dropout-ref generate``."""
    parser.add_argument("--backend", required=True, choices=known_backends())
    parser.add_argument(
        "--checkpoint",
        type=Path,
        required=True,
        help="folder of a `dropout-ref train --model gpt` run (weights.npz, config.json)",
    )
    parser.add_argument(
        "--prompt", default="\n", help="text to continue (default: a newline)"
    )
    parser.add_argument(
        "--max-new-tokens", type=int, default=200, help="characters to add (default 200)"
    )
    parser.add_argument(
        "--temperature", type=float, default=1.0, help="divides the logits (default 1.0)"
    )
    parser.add_argument(
        "--top-k",
        type=int,
        default=None,
        help="sample among the k most likely characters only (1: greedy; default all)",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of the sampler's portable uniforms (default 0)"
    )
    parser.add_argument(
        "--mc-dropout",
        action="store_true",
        help="keep dropout on while generating (Monte Carlo dropout); off by default",
    )
    parser.add_argument(
        "--mask-seed",
        type=int,
        default=None,
        help="with --mc-dropout: portable masks, step t uses mask seed + t",
    )


def _fail(message: object) -> int:
    print(f"dropout-ref generate: error: {message}", file=sys.stderr)
    return 2


def run(args: argparse.Namespace) -> int:
    """Load the checkpoint in ``--backend``, generate, print prompt and continuation."""
    import numpy as np

    from dropout_ref.core.registry import get_backend
    from dropout_ref.course.checkpoint import CheckpointError, load_checkpoint
    from dropout_ref.course.data.text import CharVocab
    from dropout_ref.models.backends import GPT_MODULE
    from dropout_ref.models.generate import generate

    try:
        get_backend(args.backend)
    except ImportError as exc:
        return _fail(exc)
    try:
        config, weights, extra = load_checkpoint(args.checkpoint)
    except CheckpointError as exc:
        return _fail(exc)
    chars = extra.get("chars")
    if not isinstance(chars, str) or len(chars) != config.vocab_size:
        return _fail(
            f"{args.checkpoint / 'config.json'} has no vocabulary (\"chars\") of "
            f"{config.vocab_size} characters: not a character-level checkpoint"
        )
    vocab = CharVocab(chars)
    if not args.prompt:
        return _fail("--prompt must hold at least one character")
    try:
        prompt = vocab.encode(args.prompt)[None, :]
    except ValueError as exc:
        return _fail(f"--prompt: {exc}")
    try:
        model = GPT_MODULE.load(args.backend).GPT(config, weights=weights)
        ids = generate(
            model,
            prompt,
            args.max_new_tokens,
            args.temperature,
            args.top_k,
            seed=args.seed,
            mc_dropout=args.mc_dropout,
            mask_seed=args.mask_seed,
        )
    except (TypeError, ValueError) as exc:
        return _fail(exc)
    sys.stdout.write(vocab.decode(np.asarray(ids)[0]) + "\n")
    return 0
