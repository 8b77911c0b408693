"""The course's per-framework modules and what each must define (the course's contract).

Each backend has ``dropout_ref.course.<backend>.{training,gpt_training,gpt_adamw}``
with the same names; the course's tools (training, compare, the MLP and GPT benches)
reach them only through these declarations. The models themselves are declared in
:mod:`dropout_ref.models.backends`.
"""

from __future__ import annotations

from dropout_ref.core.contract import ToolModule
from dropout_ref.models.backends import COURSE_BACKENDS

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
    optional={
        "compiled_sgd_step": (
            None,
            "sgd_step's signature: the same step compiled, seed and rates as runtime "
            "values (SPEC S1, S2); None where sgd_step is itself compiled (tensorflow, "
            "jax) or the framework has no compiler",
        ),
    },
)


#: Every backend whose GPT trains (numpy's is a forward oracle).
GPT_TRAINING_BACKENDS = ("torch", "mxnet", "tensorflow", "jax")


#: ``dropout_ref.course.<backend>.gpt_training``: the GPT's training step (SPEC X4).
GPT_TRAINING_MODULE = ToolModule(
    tool="course GPT training step",
    pattern="dropout_ref.course.{backend}.gpt_training",
    backends=GPT_TRAINING_BACKENDS,
    required={
        "gpt_optimizer": "(model, lr=0.1) -> the framework's plain SGD for the model",
        "gpt_train_step": (
            "(model, optimizer, idx, targets, *, mask_seed=None, rates=None) -> float loss"
        ),
        "gpt_loss_and_gradients": (
            "(model, idx, targets, *, mask_seed=None, rates=None) -> (loss, grads)"
        ),
    },
    optional={
        "compiled_gpt_train_step": (
            None,
            "gpt_train_step's signature: the same step compiled, seed and rates as runtime "
            "values (SPEC S1, S2); None where gpt_train_step is itself compiled with "
            "mask_seed (tensorflow, jax) or the framework has no compiler",
        ),
    },
)


#: ``dropout_ref.course.<backend>.gpt_adamw``: the GPT's AdamW as nanoGPT sets it up.
GPT_ADAMW_MODULE = ToolModule(
    tool="course GPT AdamW",
    pattern="dropout_ref.course.{backend}.gpt_adamw",
    backends=GPT_TRAINING_BACKENDS,
    required={
        "gpt_adamw": "(model, lr, ...) -> the framework's AdamW with nanoGPT's weight-decay "
                     "groups (MXNet: Adam with an L2 term on the matrices)",
    },
)
