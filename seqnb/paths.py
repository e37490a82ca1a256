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


def shown_path(path: str | os.PathLike[str]) -> str:
    """``path`` as the book prints it: relative to the repository when it lies inside it or
    beside it (``results``, ``../shared/data``), as a reader's own checkout has it; any
    other path stays absolute. (This machine's absolute paths mean nothing to a reader.)"""
    resolved = Path(path).resolve()
    if in_source_checkout():
        relative = Path(os.path.relpath(resolved, REPO_ROOT.resolve()))
        if relative.parts[:2] != (os.pardir, os.pardir):  # inside, or one level up
            return relative.as_posix()
    return str(resolved)
