"""Shared fixtures: every test parametrised by ``backend`` runs once per backend.

Also the suite's parallel run (``--numprocesses auto --dist loadfile`` in pyproject's addopts):
each worker gets its share of the cores for the frameworks' intra-op thread pools, and both
options are accepted (and ignored) where xdist is absent or switched off (``-p no:xdist``), so
the README's ``python -m pytest`` runs serially there instead of failing on an unknown option.
"""

from __future__ import annotations

import os

#: The environment variables that size the frameworks' intra-op thread pools (torch and MXNet
#: read OMP_NUM_THREADS, TensorFlow its own two, MKL/OpenBLAS under NumPy); the same set the
#: ``report`` command gives its workers.
THREAD_VARIABLES = (
    "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
    "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "MXNET_CPU_WORKER_NTHREADS",
)  # fmt: skip


def share_cores_between_workers() -> None:
    """Give an xdist worker ``cores // workers`` threads per framework pool (at least one).

    Two workers each running torch or TensorFlow with one thread per core would put two
    threads on every core, and the suite would run slower than on one worker. Set before any
    framework is imported (this conftest loads first in each worker); a value the user set
    wins. Outside xdist nothing changes, so a serial run keeps the frameworks' defaults.
    """
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers <= 1:
        return
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    threads = str(max(1, (cores or 1) // workers))
    for variable in THREAD_VARIABLES:
        os.environ.setdefault(variable, threads)


share_cores_between_workers()

import numpy as np  # noqa: E402  (after the thread settings, which frameworks read at import)
import pytest  # noqa: E402

from dropout_ref.conformance.natives import NATIVE_AUDIT  # noqa: E402
from dropout_ref.core.contract import NotApplicable, kit_dropout_layer  # noqa: E402
from dropout_ref.core.registry import get_backend, known_backends  # noqa: E402
from dropout_ref.models.backends import MLP_MODULE  # noqa: E402


def pytest_addoption(parser: pytest.Parser, pluginmanager: pytest.PytestPluginManager) -> None:
    """Accept xdist's ``--numprocesses``/``--dist`` from addopts where xdist is absent or blocked.

    Then the run is serial: ``python -m pytest -p no:xdist`` and an environment without
    pytest-xdist both still run the whole suite. (addopts spells ``--numprocesses``, not
    ``-n``: pytest reserves lowercase short options, which a conftest cannot declare.)
    """
    parser.addoption(
        "--every-environment", action="store_true", default=False,
        help="also run the one_environment tests where NumPy < 2 (the MXNet environment)",
    )  # fmt: skip
    if pluginmanager.has_plugin("xdist"):
        return
    group = parser.getgroup("xdist-absent", "pytest-xdist is not active: a serial run")
    group.addoption("--numprocesses", dest="numprocesses", default=None,
                    help="ignored: pytest-xdist is not installed or is disabled (-p no:xdist)")
    group.addoption("--dist", dest="dist", default="no",
                    help="ignored: pytest-xdist is not installed or is disabled (-p no:xdist)")


#: Test files that start process groups or framework subprocesses (gloo ``torch.distributed``
#: worlds of up to 4 ranks, the example scripts, the 8-device XLA subprocess): one xdist unit,
#: so they run one after another on one worker and never compete with each other for cores.
PROCESS_FILES = frozenset(
    f"tests/{name}.py"
    for name in (
        "test_distributed_torch", "test_gpt_tensor_parallel", "test_examples",
        "test_gpt_examples", "test_jax_sharding",
    )
)  # fmt: skip


#: Why a ``one_environment`` test is skipped where NumPy < 2.
ONE_ENVIRONMENT_REASON = (
    "one_environment: a torch/TensorFlow/Keras-only check, run in the numpy-2 environment "
    "(backends/jax), which has these frameworks at the same pins; --every-environment runs it here"
)


def numpy_1_environment() -> bool:
    """Return whether this is the numpy-1 (MXNet) environment: NumPy older than 2."""
    return int(np.__version__.split(".", 1)[0]) < 2


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Order the files of :data:`PROCESS_FILES` first; skip ``one_environment`` tests on NumPy 1.

    xdist hands out units in collection order: the process-spawning unit is the longest
    (minutes), so the worker that starts with it works through it while the other worker
    runs the rest; collected in alphabetical order it came late and ran alone at the end.

    A ``one_environment`` test checks torch, TensorFlow or Keras alone, with no MXNet and
    nothing that depends on NumPy's version (its oracle comparisons use the NumPy oracle,
    itself tested in both environments): the two environments pin the same torch and
    TensorFlow, so a second run in the numpy-1 environment repeats the same check. CI
    runs it once, in the numpy-2 environment; ``--every-environment`` runs it anyway.
    """
    items.sort(key=lambda item: item.nodeid.partition("::")[0] not in PROCESS_FILES)
    if numpy_1_environment() and not config.getoption("every_environment"):
        skip = pytest.mark.skip(reason=ONE_ENVIRONMENT_REASON)
        for item in items:
            if item.get_closest_marker("one_environment") is not None:
                item.add_marker(skip)


@pytest.hookimpl(optionalhook=True)  # an xdist hook: inert where xdist is absent or blocked
def pytest_xdist_make_scheduler(config: pytest.Config, log):
    """``--dist loadfile``, with the files of :data:`PROCESS_FILES` as one unit.

    A file is the unit: with plain load balancing a file's tests are spread over every worker,
    and each worker pays the file's module-scoped fixtures (the benchmark's tiny run, the
    compare runs) and the frameworks' per-process compile caches (JAX compiles every new shape
    once per process) again. (xdist's own ``--dist loadgroup`` marks do not group under
    pytest 9, whose node ids xdist 3.8 can no longer suffix, so the grouping lives here.)
    """
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class FileScheduling(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path = super()._split_scope(nodeid)
            return "the process-spawning files" if path in PROCESS_FILES else path

    return FileScheduling(config, log)

class KitView:
    """A backend whose ``dropout_layer`` follows the shared ``fn(X, p)`` convention.

    For JAX (no global generator) that is ``kit_dropout_layer``, drawing keys from
    ``arrays.seed_global``'s stream; every other attribute is the registration's
    (``ops``, ``arrays``, ...) or else the adapter package's (``MLP``).
    """

    def __init__(self, registration) -> None:
        self.registration = registration
        self.dropout_layer = kit_dropout_layer(registration)

    def __getattr__(self, name):
        try:
            return getattr(self.registration, name)
        except AttributeError:
            return getattr(self.registration.module, name)


def _adapter(name: str):
    try:
        return KitView(get_backend(name))
    except ImportError as exc:
        pytest.skip(str(exc))


@pytest.fixture(params=known_backends())
def backend(request: pytest.FixtureRequest):
    """The adapter of each backend; skipped with the reason where it does not import."""
    return _adapter(request.param)


@pytest.fixture(params=[name for name in known_backends() if name != "numpy"])
def autodiff_backend(request: pytest.FixtureRequest):
    """The adapter of each backend with automatic differentiation.

    Skipped, with the bridge's reason, where ``arrays.value_and_grad`` raises
    ``NotApplicable`` (e.g. the array_api backend: the standard has no autodiff).
    """
    adapter = _adapter(request.param)
    x = adapter.arrays.from_numpy(np.ones(1, np.float32))
    try:
        adapter.arrays.value_and_grad(lambda v: v, x, np.ones(1, np.float32))
    except NotApplicable as exc:
        pytest.skip(f"{request.param}: {exc}")
    return adapter


@pytest.fixture(params=MLP_MODULE.backends)
def course_backend(request: pytest.FixtureRequest):
    """The adapter of each backend the course covers (its MLP and training step)."""
    return _adapter(request.param)


@pytest.fixture(params=NATIVE_AUDIT.backends)
def audited_backend(request: pytest.FixtureRequest):
    """The adapter of each backend whose framework has native dropouts to audit."""
    return _adapter(request.param)


@pytest.fixture
def umask_022():
    """Run the test under umask 022 (read afresh by course.file_modes), then restore it."""
    import os

    from dropout_ref.course.file_modes import current_umask

    old = os.umask(0o022)
    current_umask.cache_clear()
    try:
        yield
    finally:
        os.umask(old)
        current_umask.cache_clear()
