"""The executed notebook of a run the kfp engines made, from the steps' report pages.

Every step component declares an HTML output, `cellpipe_report` (runtime/report_html.py): the
page the KFP UI shows for the step, which holds the step's report (each cell's outputs) as
JSON. The executed notebook (launcher/executed.py) is assembled from exactly those artifacts:

- `kfp-local`: kfp.local keeps each task's outputs under its pipeline root; the page is where
  the task's executor output says (or, for a failed step, for which kfp writes no executor
  output, at the path kfp.local gave the output: the step writes its page before it fails).
- `kfp` (a cluster): the run's details list each task's output artifacts by id (the v2beta1
  API); the ArtifactService (`GET /apis/v2beta1/artifacts/{id}?view=DOWNLOAD`, KFP 2.1 on)
  answers a signed URL of the object store, read without the KFP credentials (they go to the
  KFP host only). A cluster's launcher uploads no output of a failed step, so a failed step's
  cells are left empty there (its log has the traceback). Where the API offers no artifacts
  (an older KFP), or they cannot be read, the run keeps no executed notebook and says why.
"""

from __future__ import annotations

import http.client
import json
import ssl
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cellpipe.runtime.report_html import REPORT_OUTPUT, NoReport, read_cells

from .executed import StepOutcome, write_executed
from .k8s import ClusterError
from .store import RunRecord

EXECUTOR_OUTPUT = "executor_output.json"
MAX_PAGE_BYTES = 256 << 20  # a step's outputs are bounded (runtime/shell.py OutputLimits)
DOWNLOAD_TIMEOUT = 60.0
ARTIFACT_PATH = "/apis/v2beta1/artifacts/{artifact_id}"
# In a cluster run's `external`: why its executed notebook is missing, or which steps' outputs
# it lacks (`cellpipe status` says it)
NOTEBOOK_NOTE = "notebook_note"


def reports_on(bundle: dict[str, Any], task: str) -> bool:
    """Whether the step keeps a report page (on unless `report:disabled`)."""
    return bool(bundle["steps"][task].get("report", True))


def _read_page(path: Path) -> dict[str, Any] | None:
    try:
        return read_cells(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, NoReport):
        return None


def local_page(task_root: Path) -> Path:
    """Where kfp.local keeps the task's report page: the uri its executor output names, else
    the path kfp.local gave the output (task root / output name)."""
    try:
        output = json.loads((task_root / EXECUTOR_OUTPUT).read_text(encoding="utf-8"))
        uri = output["artifacts"][REPORT_OUTPUT]["artifacts"][0]["uri"]
    except (OSError, ValueError, KeyError, IndexError, TypeError):
        return task_root / REPORT_OUTPUT
    return Path(uri) if isinstance(uri, str) and uri.startswith("/") else task_root / uri


def kfp_local_outcomes(
    bundle: dict[str, Any], record: RunRecord, task_roots: dict[str, Path]
) -> list[StepOutcome]:
    """Each step as kfp.local left it, with the report its page holds."""
    outcomes = []
    for step in record.steps.values():
        root = task_roots.get(step.task)
        report = None
        if root is not None and step.task in bundle["steps"] and reports_on(bundle, step.task):
            report = _read_page(local_page(root))
        outcomes.append(StepOutcome(step.task, step.name, step.status, False, report))
    return outcomes


def write_notebook(
    run_dir: Path, bundle: dict[str, Any], record: RunRecord, outcomes: Iterable[StepOutcome]
) -> Path | None:
    about = {"run": record.run_id, "engine": record.engine, "status": record.status}
    return write_executed(run_dir, bundle, outcomes, {**about, "parameters": record.parameters})


def read_bundle(run_dir: Path) -> dict[str, Any] | None:
    try:
        bundle = json.loads((run_dir / "bundle.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return bundle if isinstance(bundle, dict) and isinstance(bundle.get("steps"), dict) else None


# -- a run on Kubeflow Pipelines ------------------------------------------------------------
Call = Callable[..., Any]  # KfpEngine._call: (what, function, *args, **kwargs)


@dataclass
class ClusterReports:
    """What the KFP API gave of each step's page, and why any is missing (for people)."""

    reports: dict[str, dict[str, Any]] = field(default_factory=dict)  # by task
    missing: dict[str, str] = field(default_factory=dict)  # step name -> why
    offered: bool = True  # False: the API lists no artifacts at all (an older KFP)


def _artifact_ids(task: Any) -> list[str]:
    outputs = getattr(task, "outputs", None) or {}
    listed = outputs.get(REPORT_OUTPUT) if isinstance(outputs, dict) else None
    ids = getattr(listed, "artifact_ids", None) or []
    return [str(i) for i in ids]


def download(url: str, ca_file: str | None = None) -> str:
    """A signed object-store URL's content, read with no credentials of ours (a signed URL
    carries its own, and the KFP token goes to the KFP host only)."""
    if not url.startswith(("https://", "http://")):
        raise ValueError(f"not an http(s) URL: {url[:80]!r}")
    context = ssl.create_default_context(cafile=ca_file) if url.startswith("https:") else None
    request = urllib.request.Request(url, headers={"Accept": "*/*"})
    with urllib.request.urlopen(request, timeout=DOWNLOAD_TIMEOUT, context=context) as answer:
        data: bytes = answer.read(MAX_PAGE_BYTES + 1)
    if len(data) > MAX_PAGE_BYTES:
        raise ValueError(f"larger than {MAX_PAGE_BYTES >> 20} MB")
    return data.decode("utf-8")


def cluster_reports(
    call: Call,
    client: Any,
    run: Any,
    record: RunRecord,
    bundle: dict[str, Any],
    ca_file: str | None = None,
) -> ClusterReports:
    """Each step's report page, through the run's details and the ArtifactService."""
    found = ClusterReports()
    tasks = (run.run_details.task_details or []) if getattr(run, "run_details", None) else []
    by_step: dict[str, Any] = {}
    for task in tasks:
        for step in record.steps.values():
            if task.display_name in (step.name, step.task) and _artifact_ids(task):
                by_step[step.task] = task
    wanted = [
        s for s in record.steps.values() if s.task in bundle["steps"] and reports_on(bundle, s.task)
    ]
    if not by_step and any(s.status == "Succeeded" for s in wanted):
        found.offered = False  # a step that kept its page, and no artifact of any listed
    for step in wanted:
        task = by_step.get(step.task)
        if task is None:
            found.missing[step.name] = (
                "Kubeflow Pipelines keeps no outputs of a failed step"
                if step.status == "Failed"
                else "not run"
                if step.status != "Succeeded"
                else "the run's details list no report artifact of it"
            )
            continue
        artifact_id = _artifact_ids(task)[-1]
        try:
            artifact = call(
                f"reading artifact {artifact_id} (step {step.name!r})",
                client.call_api,
                ARTIFACT_PATH,
                "GET",
                path_params={"artifact_id": artifact_id},
                query_params=[("view", "DOWNLOAD")],
                header_params={"Accept": "application/json"},
                response_type="object",
                auth_settings=["Bearer"],
                _return_http_data_only=True,
            )
        except ClusterError as exc:
            if exc.status == 404 and not found.reports:
                found.offered = False  # no ArtifactService: KFP before 2.1
            found.missing[step.name] = str(exc)
            continue
        url = artifact.get("download_url") if isinstance(artifact, dict) else None
        if not url:
            found.missing[step.name] = "the KFP API gave no download URL for its report"
            continue
        try:
            found.reports[step.task] = read_cells(download(url, ca_file))
        except (OSError, ValueError, http.client.HTTPException) as exc:
            found.missing[step.name] = f"its report could not be read from the object store: {exc}"
    return found


def why_no_notebook(found: ClusterReports, link: str | None) -> str:
    where = f"; the steps' outputs are in the KFP UI: {link}" if link else ""
    if not found.offered:
        return (
            "this Kubeflow Pipelines API lists no output artifacts of the run's steps, or "
            "cannot give them for download (the v2beta1 ArtifactService, KFP 2.1 on)" + where
        )
    missing = "; ".join(f"step {name!r}: {why}" for name, why in found.missing.items())
    return f"no step's report could be read ({missing}){where}"


def missing_note(found: ClusterReports) -> str | None:
    """For a notebook that was written: the steps whose outputs it lacks, and why."""
    if not found.missing:
        return None
    return "outputs not kept for " + "; ".join(
        f"step {name!r} ({why})" for name, why in found.missing.items()
    )
