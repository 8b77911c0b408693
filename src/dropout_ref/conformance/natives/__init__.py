"""The frameworks' own dropouts under audit: one module per framework (:data:`NATIVE_AUDIT`)."""

from dropout_ref.core.contract import ToolModule

#: The contract of ``dropout_ref.conformance.natives.<backend>``.
NATIVE_AUDIT = ToolModule(
    tool="native audit",
    pattern="dropout_ref.conformance.natives.{backend}",
    backends=("numpy", "torch", "mxnet", "tensorflow", "jax"),
    required={
        "NATIVES": "dict: name -> fn(X, p), the framework's element-wise dropouts",
        "EXPECTED_DEVIATIONS": "dict: name -> {clause: why}, the documented deviations",
    },
    optional={
        "STRUCTURED": ({}, "dict: name -> (fn(X, p), the noise shape of the kit's variant)"),
        "ATTENTION": ({}, "dict: name -> factory of an attention probe (conformance.attention)"),
    },
)
