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
    optional={
        "compiled_sgd_step": (
            None,
            "sgd_step's signature: the same step compiled, seed and rates as runtime "
            "values (SPEC S1, S2); None where sgd_step is itself compiled (tensorflow, "
            "jax) or the framework has no compiler",
        ),
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

#: Every backend with the course GPT (SPEC X1-X5).
GPT_BACKENDS = COURSE_BACKENDS
#: Every backend whose GPT trains (numpy's is a forward oracle).
GPT_TRAINING_BACKENDS = ("torch", "mxnet", "tensorflow", "jax")

#: ``dropout_ref.course.<backend>.gpt``: the GPT (SPEC X1-X5).
GPT_MODULE = ToolModule(
    tool="course GPT",
    pattern="dropout_ref.course.{backend}.gpt",
    backends=GPT_BACKENDS,
    required={"GPT": "GPT(config, weights=None, rng=0) in the framework's idiom, get_weights()"},
)

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

#: ``dropout_ref.course.<backend>.forward``: any of our models' forward pass as NumPy.
FORWARD_MODULE = ToolModule(
    tool="course forward",
    pattern="dropout_ref.course.{backend}.forward",
    backends=COURSE_BACKENDS,
    required={
        "forward_numpy": "(model, inputs, *, training, mask_seed=None) -> numpy output "
                         "in the framework's train or eval idiom (M2, X3)",
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
