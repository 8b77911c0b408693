"""Per-framework cases of ``dropout-ref bench``: ``dropout_ref.bench.cases.<backend>``."""

from dropout_ref.core.contract import ToolModule

#: The contract of ``dropout_ref.bench.cases.<backend>``.
BENCH_CASES = ToolModule(
    tool="bench cases",
    pattern="dropout_ref.bench.cases.{backend}",
    backends=("numpy", "torch", "mxnet", "tensorflow", "jax"),
    required={
        "framework_version": "() -> str",
        "thread_count": "() -> int, the framework's intra-op threads",
        "make_cases": "(size, dtype, *, fused, rate) -> CaseSet, the dropout cases at one size",
    },
    optional={
        "MEMORY_POOLED": (False, "bool: the framework pools memory, so peaks are measured "
                                 "on a first call in a fresh process"),
        "CPU_KERNEL": (False, "bool: the backend runs the numba CPU kernel (compile cost row)"),
        "mlp_epoch_cases": (None, "() -> CaseSet, one course-MLP epoch, ours vs native dropout"),
        "check_device": (None, "(device) -> None, raise ValueError if it is absent; "
                               "None: CPU only"),
        "device_info": (None, "(device) -> str naming the device"),
        "native_dropout_layer": (None, "(X, dropout, *, seed=None, offset=0) -> the "
                                       "framework's own dropout in dropout_layer's signature "
                                       "(the MLP-epoch and GPT-step native cases)"),
        "native_gpt_model": (None, "(model) -> the course GPT with the framework's own "
                                   "dropout module at every site, for frameworks whose "
                                   "compiled steps are cached per model structure, where "
                                   "patching dropout_layer would reuse our program (jax)"),
        "compiled_loop": (None, "(steps, device) -> dict, the compiled training loop with a "
                                "runtime rate and seed per step (bench --compiled)"),
    },
)
