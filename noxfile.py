"""Development sessions: tests, oldest, lint, typing, bench.

``nox -s tests`` installs harken (not editable, so the packaged model file is
what gets tested) into a fresh virtual environment and runs pytest.
"""

from __future__ import annotations

import nox

nox.options.sessions = ["tests", "lint", "typing"]
nox.options.reuse_existing_virtualenvs = True

TEST_DEPS = ["pytest>=7", "hypothesis>=6", "pytest-cov>=4", "pytest-timeout>=2.1"]
PATHS = ["analyzer", "cli", "tests", "benchmarks", "examples", "noxfile.py"]


@nox.session
def tests(session: nox.Session) -> None:
    """The test suite, on the Python that runs nox (or ``--force-python 3.X``)."""
    session.install(".[dask]", *TEST_DEPS)  # the cluster tests need dask.distributed
    session.run("pytest", *session.posargs)


@nox.session(python="3.11")  # (numpy 1.25 has no wheels for 3.12 and later)
def oldest(session: nox.Session) -> None:
    """The test suite with the oldest library versions pyproject.toml allows
    (``tests/oldest-versions.txt``), so its floors are known to work."""
    session.install("-c", "tests/oldest-versions.txt", ".[dask]", *TEST_DEPS)
    session.run("pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    session.install("ruff")
    session.run("ruff", "check", *PATHS)
    session.run("ruff", "format", "--check", *PATHS)


@nox.session
def typing(session: nox.Session) -> None:
    session.install(".", "mypy")
    session.run("mypy")


@nox.session
def bench(session: nox.Session) -> None:
    """The benchmark harness; writes benchmarks/RESULTS.md."""
    session.install(".[dask]")
    session.run("python", "benchmarks/run.py", *session.posargs)
