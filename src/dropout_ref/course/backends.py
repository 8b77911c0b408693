"""The course's per-framework modules and what each must define (the course's contract).

Each backend has ``dropout_ref.course.<backend>.{mlp,training,model_modes}``
with the same names; the course's tools (training, compare, the port check,
the model conformance checks, the MLP bench) reach them only through these
declarations.
"""

from __future__ import annotations

from dropout_ref.core.contract import ToolModule

#: Every backend with the course MLP.
COURSE_BACKENDS = ("numpy", "torch", "mxnet", "tensorflow", "jax")

#: ``dropout_ref.course.<backend>.mlp``: the model (SPEC M1-M5).
MLP_MODULE = ToolModule(
    tool="course MLP",
    pattern="dropout_ref.course.{backend}.mlp",
    backends=COURSE_BACKENDS,
    required={"MLP": "the course MLP in the framework's idiom (M1, M2), weights as in M5"},
)

#: ``dropout_ref.course.<backend>.training``: one SGD step and predictions (SPEC M6, T1).
TRAINING_MODULE = ToolModule(
    tool="course training step",
    pattern="dropout_ref.course.{backend}.training",
    backends=COURSE_BACKENDS,
    required={
        "sgd_step": "(model, images, labels, lr, mask_seed=None, rates=None) -> float loss; "
                    "updates model; rates: the two dropouts' rates this step (SPEC S3)",
        "predict": "(model, images) -> numpy int labels, in eval mode",
    },
)

#: ``dropout_ref.course.<backend>.model_modes``: the train/eval idiom (SPEC M2, M3).
MODEL_MODES_MODULE = ToolModule(
    tool="model modes",
    pattern="dropout_ref.course.{backend}.model_modes",
    backends=COURSE_BACKENDS,
    required={
        "train_forward": "(model, images) -> numpy logits in the framework's training mode",
        "eval_forward": "(model, images) -> numpy logits in its eval mode",
    },
)
