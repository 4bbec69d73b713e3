"""What pyproject.toml promises about dependencies is what ``nox -s oldest`` tests."""

from __future__ import annotations

import sys
from pathlib import Path

from packaging.requirements import Requirement
from packaging.version import Version

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

REPO = Path(__file__).resolve().parent.parent


def test_the_oldest_versions_tested_are_the_floors_pyproject_allows() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    wanted = [*project["dependencies"], *project["optional-dependencies"]["dask"]]
    floors = {}
    for text in wanted:
        requirement = Requirement(text)
        if requirement.marker is None:  # (tomli is only for Python 3.10)
            (spec,) = requirement.specifier
            assert spec.operator == ">=", text
            floors[requirement.name] = Version(spec.version)
    pinned = {}
    for line in (REPO / "tests" / "oldest-versions.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, version = line.strip().split("==")
            pinned[name] = Version(version)
    assert {name: pinned.get(name) for name in floors} == floors
