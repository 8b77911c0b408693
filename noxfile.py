"""Build each environment, run the test suite in it, and print ONE conformance matrix over all.

The frameworks cannot share one interpreter: MXNet 1.9.1 needs numpy < 2, and Triton aborts
when loaded beside TensorFlow. So each environment is a nox session with its own virtual
environment, built from its pinned requirements:

- ``all``: numpy 1.26, torch, tensorflow-cpu, mxnet (``backends/all/requirements.txt``);
- ``jax``: numpy 2, jax[cpu], flax, keras, torch, tensorflow-cpu
  (``backends/jax/requirements.txt``);
- ``triton``: numpy 2, torch (CPU) and triton, no tensorflow (``backends/triton/requirements.txt``):
  the torch backend's Triton kernel under ``TRITON_INTERPRET=1`` on CPU tensors;
- ``vision`` (optional, not in CI): numpy 2, torch 2.14.1, torchvision 0.29.1, timm
  (``backends/vision/requirements.txt``): the native stochastic-depth audit (SPEC V1) and doors
  (SPEC P8) of timm and torchvision, a 5.5 GB CUDA build of torch run on CPU.

Sessions::

    nox -s tests-all tests-jax    # the test suite in each environment (pytest arguments after --)
    nox -s tests-triton           # the Triton kernel's tests under the interpreter
    nox -s tests-vision           # optional: the suite beside torchvision and timm
    nox -s matrix                 # both environments' reports, merged into one matrix
    nox -s docs                   # the documentation site, warnings as errors (site/)
    nox -s package                # build, twine check, the wheel in a fresh venv

Adding an environment is one entry in :data:`ENVIRONMENTS` and, for its sessions, two small
functions calling :func:`run_tests` and :func:`write_report` (see the ``jax`` ones), plus its
name in ``matrix``'s ``requires``.
"""

from __future__ import annotations

from pathlib import Path

import nox

nox.options.sessions = ["tests-all", "tests-jax", "tests-triton"]
nox.options.reuse_venv = "yes"

#: Environment name -> its pinned requirements file.
ENVIRONMENTS = {
    "all": "backends/all/requirements.txt",
    "jax": "backends/jax/requirements.txt",
    "triton": "backends/triton/requirements.txt",
    "vision": "backends/vision/requirements.txt",
}
#: Where each environment's JSON report goes (``matrix`` merges them).
REPORTS = Path(".nox-reports")


def install(session: nox.Session, environment: str, extras: str = "test") -> None:
    """Install the environment's pinned frameworks and the project (editable) into the session."""
    session.install("-r", ENVIRONMENTS[environment], "-e", f".[{extras}]")


def run_tests(session: nox.Session, environment: str) -> None:
    """Run the test suite (backends missing here skip, with the install command as reason)."""
    install(session, environment)
    session.run("python", "-m", "pytest", *session.posargs)


def write_report(session: nox.Session, environment: str) -> None:
    """Write the environment's conformance report as JSON for ``matrix``.

    Exit status 1 (one of our backends failed a clause) is kept for ``matrix`` to report.
    """
    install(session, environment)
    REPORTS.mkdir(exist_ok=True)
    with (REPORTS / f"{environment}.json").open("w", encoding="utf-8") as out:
        session.run("dropout-ref", "report", "--format", "json", stdout=out, success_codes=[0, 1])


@nox.session(name="tests-all")
def tests_all(session: nox.Session) -> None:
    """The test suite in the MXNet environment (numpy 1.26)."""
    run_tests(session, "all")


@nox.session(name="tests-jax")
def tests_jax(session: nox.Session) -> None:
    """The test suite in the numpy-2 environment (jax, flax, keras; no mxnet)."""
    run_tests(session, "jax")


@nox.session(name="tests-triton")
def tests_triton(session: nox.Session) -> None:
    """The Triton kernel's tests on CPU tensors under Triton's interpreter (no GPU needed)."""
    install(session, "triton")
    session.run(
        "python", "-m", "pytest", "tests/test_triton_kernel.py", *session.posargs,
        env={"TRITON_INTERPRET": "1"},
    )


@nox.session(name="tests-vision")
def tests_vision(session: nox.Session) -> None:
    """The test suite beside torchvision and timm (optional: not a default session, not in CI)."""
    run_tests(session, "vision")


@nox.session(name="report-all")
def report_all(session: nox.Session) -> None:
    """Write the MXNet environment's conformance report as JSON."""
    write_report(session, "all")


@nox.session(name="report-jax")
def report_jax(session: nox.Session) -> None:
    """Write the numpy-2 environment's conformance report as JSON."""
    write_report(session, "jax")


@nox.session(requires=["report-all", "report-jax"])
def matrix(session: nox.Session) -> None:
    """Print one matrix over every backend and native of every environment."""
    session.install("-e", ".")
    reports = [str(REPORTS / f"{name}.json") for name in ("all", "jax")]
    fmt = session.posargs or ["--format", "markdown"]
    session.run("dropout-ref", "report", "--merge", *reports, *fmt)


@nox.session
def docs(session: nox.Session) -> None:
    """Build the documentation site with warnings as errors (into ``site/``).

    mkdocstrings reads the package statically, so neither the package nor a framework is
    installed here.
    """
    session.install("-r", "docs/requirements.txt")
    session.run("mkdocs", "build", "--strict", *session.posargs,
                env={"DISABLE_MKDOCS_2_WARNING": "true", "NO_MKDOCS_2_WARNING": "1"})


@nox.session
def package(session: nox.Session) -> None:
    """Build the sdist and wheel, ``twine check`` them, run the wheel from a fresh venv.

    ``.ci/package-check`` does the work (CI runs the same script): the installed wheel, not the
    source tree, must run ``dropout-ref backends`` and ``dropout-ref report --backend numpy``.
    """
    session.install("build", "twine")
    session.run("bash", ".ci/package-check", external=True)
