"""Where seqnb looks for data and stores results."""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_DIR.parent


def in_source_checkout() -> bool:
    return (REPO_ROOT / "pyproject.toml").exists() and (REPO_ROOT / "_toc.yml").exists()


def results_root(root: str | os.PathLike[str] | None = None) -> Path:
    """Result store: argument, else ``SEQNB_RESULTS``, else ``<repo>/results`` in a source
    checkout, else ``./results``."""
    if root is not None:
        return Path(root)
    env = os.environ.get("SEQNB_RESULTS")
    if env:
        return Path(env)
    if in_source_checkout():
        return REPO_ROOT / "results"
    return Path.cwd() / "results"
