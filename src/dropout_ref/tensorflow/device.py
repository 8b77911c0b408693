"""Placing new TensorFlow ops on an input's device."""

from __future__ import annotations

import contextlib
from typing import Any

import tensorflow as tf


def on_device_of(X: Any) -> contextlib.AbstractContextManager[Any]:
    """Place new ops on ``X``'s device (eager tensors know it; symbolic ones do not)."""
    device = getattr(X, "device", "") or ""
    return tf.device(device) if device else contextlib.nullcontext()
