"""`environment.yml` (conda) installs what `pip install -e ".[dev]"` does, with the same
version ranges as `pyproject.toml`."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

tomllib = pytest.importorskip("tomllib")

REPO = Path(__file__).resolve().parents[1]
CONDA_NAMES = {"pytorch": "torch"}  # conda package -> its PyPI name


def _split(requirement: str) -> tuple[str, str]:
    name, spec = re.fullmatch(r"\s*([A-Za-z0-9_.\-]+)\s*(.*)", requirement).groups()
    return name.lower(), spec.replace(" ", "")


def test_environment_matches_pyproject() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    wanted = dict(_split(r) for r in [*project["dependencies"], *extras["book"], *extras["dev"]]
                  if not r.startswith("seqnb"))
    env = yaml.safe_load((REPO / "environment.yml").read_text())["dependencies"]
    pip = next(d["pip"] for d in env if isinstance(d, dict))
    listed = {}
    for entry in [d for d in env if isinstance(d, str)] + [p for p in pip if p != "-e ."]:
        name, spec = _split(entry.strip('"'))
        listed[CONDA_NAMES.get(name, name)] = spec
    assert "-e ." in pip  # the package itself
    missing = {n: s for n, s in wanted.items() if n not in listed}
    differ = {n: (s, listed[n]) for n, s in wanted.items() if n in listed and listed[n] != s}
    assert not missing and not differ, f"missing: {missing}; pyproject vs conda: {differ}"
