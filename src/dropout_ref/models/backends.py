"""Our models' per-framework modules and what each must define (the models' contract).

Each backend has ``dropout_ref.models.<backend>.{mlp,gpt,forward,model_modes}``
with the same names; every tool (training, the port checks, the conformance kit's
model checks, the benches) reaches them only through these declarations.
"""

from __future__ import annotations

from dropout_ref.core.contract import ToolModule

#: Every backend with the course MLP.
COURSE_BACKENDS = ("numpy", "torch", "mxnet", "tensorflow", "jax")

#: Every backend with the GPT (SPEC X1-X5).
GPT_BACKENDS = COURSE_BACKENDS

#: ``dropout_ref.models.<backend>.mlp``: the model (SPEC M1-M5).
MLP_MODULE = ToolModule(
    tool="course MLP",
    pattern="dropout_ref.models.{backend}.mlp",
    backends=COURSE_BACKENDS,
    required={"MLP": "the course MLP in the framework's idiom (M1, M2), weights as in M5"},
)

#: ``dropout_ref.models.<backend>.model_modes``: the train/eval idiom (SPEC M2, M3).
MODEL_MODES_MODULE = ToolModule(
    tool="model modes",
    pattern="dropout_ref.models.{backend}.model_modes",
    backends=COURSE_BACKENDS,
    required={
        "train_forward": "(model, images) -> numpy logits in the framework's training mode",
        "eval_forward": "(model, images) -> numpy logits in its eval mode",
    },
)

#: ``dropout_ref.models.<backend>.gpt``: the GPT (SPEC X1-X5).
GPT_MODULE = ToolModule(
    tool="course GPT",
    pattern="dropout_ref.models.{backend}.gpt",
    backends=GPT_BACKENDS,
    required={"GPT": "GPT(config, weights=None, rng=0) in the framework's idiom, get_weights()"},
)

#: ``dropout_ref.models.<backend>.forward``: any of our models' forward pass as NumPy.
FORWARD_MODULE = ToolModule(
    tool="course forward",
    pattern="dropout_ref.models.{backend}.forward",
    backends=COURSE_BACKENDS,
    required={
        "forward_numpy": "(model, inputs, *, training, mask_seed=None) -> numpy output "
                         "in the framework's train or eval idiom (M2, X3)",
    },
)
