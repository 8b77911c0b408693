"""Mutants that need a framework: the course code per framework, and an MXNet gradient trap."""

from __future__ import annotations

from . import Mutant
from .course_mutants import (
    course_mxnet,
    course_tensorflow,
    course_torch,
    mxnet_where_scalar_branch,
)

MUTANTS = [
    Mutant(
        "course_tensorflow_float64",
        "tensorflow",
        course_tensorflow,
        ("D7",),
        "course TF code: tf.cast(mask, tf.float32) * X fails for float64 X",
    ),
    Mutant(
        "course_torch_cpu",
        "torch",
        course_torch,
        ("D1", "D6"),
        "course torch code: assert for bad rates; mask * X leaks NaN and gives -0.0",
    ),
    Mutant(
        "course_mxnet",
        "mxnet",
        course_mxnet,
        ("D1", "D6"),
        "course MXNet code: assert for bad rates; mask * X leaks NaN and gives -0.0",
    ),
    Mutant(
        "mxnet_where_scalar_branch",
        "mxnet",
        mxnet_where_scalar_branch,
        ("D8",),
        "mnp.where(keep, x, 0.0): MXNet 1.9.1 sends the gradient to the dropped elements",
    ),
]
