"""ipywidgets: a form to submit the notebook's pipeline, and progress bars that follow a run.

`SubmitForm()` (or `%cellpipe submit --form`) shows the engine, the parameters (a typed field
each), GPU type and count per step (the configured `gpu_types`, with the cluster's free counts
when its inventory can be read), workers (training engines), and a Submit button. Submitting
runs in a background thread and follows the run with a progress bar per step:

- the engines that run here (`local`, `kfp-local`) through the launcher's BackgroundRunner,
  which hands each step's events to the bars as steps start and end;
- the cluster engines through the launcher's submit (cellpipe.launcher.submitting), also on
  the BackgroundRunner, then followed through the launcher's Runs until the run ends.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any

import ipywidgets as widgets  # type: ignore[import-untyped]

from cellpipe.launcher.background import BackgroundRunner
from cellpipe.launcher.cluster import SubmitOptions
from cellpipe.launcher.config import CellPipe, load_config
from cellpipe.launcher.errors import UserError
from cellpipe.launcher.gpus import apply_gpu_choices, cluster_inventory, configured_types
from cellpipe.launcher.notebooks import Prepared, prepare_file
from cellpipe.launcher.store import RunRecord
from cellpipe.launcher.submitting import SubmitChoices, plan_submit
from cellpipe.launcher.tracking import Runs
from cellpipe.launcher.vocabulary import FINISHED, RunStatus
from cellpipe.notebook_finder import NotebookNotFound, find_notebook

log = logging.getLogger(__name__)
_BAR_STYLES = {
    "Pending": "",
    "Running": "info",
    "Succeeded": "success",
    "Failed": "danger",
    "Cancelled": "warning",
}


# --- progress ---------------------------------------------------------------------------------


class RunProgress(widgets.VBox):  # type: ignore[misc]
    """A progress bar per step, and one for the run; an engine listener (any thread)."""

    def __init__(self, step_names: Sequence[str], title: str = "") -> None:
        self.title = widgets.HTML(escape(title))
        self.overall = widgets.IntProgress(
            value=0, min=0, max=max(len(step_names), 1), description="steps", bar_style="info"
        )
        self.bars: dict[str, widgets.FloatProgress] = {}
        self.labels: dict[str, widgets.Label] = {}
        self.statuses: dict[str, str] = {}
        rows = []
        for name in step_names:
            bar = widgets.FloatProgress(value=0.0, min=0.0, max=1.0)
            label = widgets.Label("Pending")
            self.bars[name], self.labels[name], self.statuses[name] = bar, label, "Pending"
            title_label = widgets.Label(name, layout=widgets.Layout(width="30%"))
            title_label.tooltip = name
            rows.append(widgets.HBox([title_label, bar, label]))
        self._lock = threading.Lock()
        super().__init__([self.title, self.overall, *rows])

    def __call__(self, event: str, step: Any) -> None:
        self.show_step(
            step.name,
            {
                "status": step.status,
                "cached": bool(step.cached),
                "seconds": step.seconds,
                "error": step.error,
            },
        )

    def close(self) -> None:
        pass

    def show_step(self, name: str, step: Mapping[str, Any]) -> None:
        status = str(step.get("status") or "Pending")
        with self._lock:
            bar, label = self.bars.get(name), self.labels.get(name)
            if bar is None or label is None:
                return
            self.statuses[name] = status
            bar.bar_style = _BAR_STYLES.get(status, "")
            bar.value = 0.0 if status == "Pending" else 0.5 if status == "Running" else 1.0
            if status == "Succeeded":
                seconds = step.get("seconds")
                label.value = (
                    "cached"
                    if step.get("cached")
                    else (f"{seconds:.2f} s" if isinstance(seconds, (int, float)) else "done")
                )
            elif status == "Failed":
                error = str(step.get("error") or "").splitlines()
                label.value = f"failed: {error[0]}" if error else "failed"
            else:
                label.value = status.lower()
            self.overall.value = sum(s in FINISHED for s in self.statuses.values())

    def show_run(self, run: Mapping[str, Any]) -> None:
        """Take a run's JSON (the `status --format json` shape): its steps and status."""
        for name, step in (run.get("steps") or {}).items():
            self.show_step(name, step)
        status = str(run.get("status") or "")
        self.overall.bar_style = _BAR_STYLES.get(status, "info")
        metrics = run.get("metrics") or {}
        shown = ", ".join(f"{k} = {v:g}" for k, v in metrics.items() if isinstance(v, (int, float)))
        error = f" ({run['error']})" if run.get("error") and status != "Succeeded" else ""
        self.title.value = escape(
            f"run {run.get('run_id', '')}: {status}{error}" + (f"; {shown}" if shown else "")
        )


class TuneTable(widgets.VBox):  # type: ignore[misc]
    """The trials of a tune as they start and end (`%cellpipe tune`): a table (trial,
    parameters, objective, status, the steps it ran) and the best so far. A tune listener
    (launcher.tuning.TuneListener), called from the tune's threads. Every cell is escaped:
    parameter values are the notebook's data."""

    def __init__(self, metric: str, direction: str) -> None:
        self.metric, self.direction = metric, direction
        self.best = widgets.HTML(escape(f"{direction} {metric}: no trial has ended yet"))
        self.table = widgets.HTML("")
        self._lock = threading.Lock()
        super().__init__([self.best, self.table])

    def __call__(self, event: str, tune: Any, trial: Any) -> None:
        with self._lock:
            self.show(tune.to_json())

    def show(self, tune: Mapping[str, Any]) -> None:
        """Take a tune's JSON (`cellpipe tune --format json`)."""
        rows = "".join(_trial_row(t) for t in tune.get("trials") or [])
        header = "".join(
            f"<th>{escape(h)}</th>"
            for h in ("trial", "parameters", self.metric, "status", "steps ran")
        )
        self.table.value = f"<table><tr>{header}</tr>{rows}</table>"
        best = tune.get("best")
        status = str(tune.get("status") or "")
        if best:
            chosen = ", ".join(f"{k} = {v!r}" for k, v in best["parameters"].items())
            self.best.value = escape(
                f"tune {tune.get('tune_id', '')}: {status}; best {self.metric} = "
                f"{best['value']:g} ({chosen})"
            )

    def close(self) -> None:
        pass


def _trial_row(trial: Mapping[str, Any]) -> str:
    parameters = ", ".join(f"{k} = {v!r}" for k, v in trial.get("parameters", {}).items())
    value = trial.get("value")
    cells = [
        str(trial.get("trial", "")),
        parameters,
        "" if value is None else f"{value:g}",
        str(trial.get("status", "")) + (f": {trial['error']}" if trial.get("error") else ""),
        ", ".join(trial.get("steps_ran") or []),
    ]
    return "<tr>" + "".join(f"<td>{escape(c)}</td>" for c in cells) + "</tr>"


# --- the form ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class SubmitValues:
    """What the form says: everything a submission needs beyond the notebook."""

    engine: str
    parameters: dict[str, Any]  # typed as each parameter's default
    gpus: dict[str, tuple[int, str | None]]  # step name -> (count, type); 0: no GPUs
    workers: int
    use_cache: bool

    def gpu_overrides(self) -> list[str]:
        """As `--gpu STEP=N[:TYPE]` (launcher.gpus.parse_gpu_override reads them)."""
        return [
            f"{step}={count}" + (f":{gpu_type}" if gpu_type and count else "")
            for step, (count, gpu_type) in self.gpus.items()
        ]


def _parameter_widget(name: str, kind: str, value: Any) -> widgets.Widget:
    layout = widgets.Layout(width="60%")
    style = {"description_width": "30%"}
    if kind == "bool":
        return widgets.Checkbox(value=bool(value), description=name, indent=False)
    if kind == "int":
        return widgets.IntText(value=value, description=name, layout=layout, style=style)
    if kind == "float":
        return widgets.FloatText(value=value, description=name, layout=layout, style=style)
    text = value if kind == "str" else json.dumps(value)
    return widgets.Text(value=text, description=name, layout=layout, style=style)


class SubmitForm(widgets.VBox):  # type: ignore[misc]
    """Choose engine, parameters, GPUs and workers for the notebook's pipeline; submit; follow.

    Args:
        notebook: the .ipynb file (default: the notebook this kernel runs).
        engine: the engine chosen at first (default: c.CellPipe.default_engine).
        parameters: `NAME=VALUE` texts that set the fields at first (as `-p`).
        config: a cellpipe.launcher.config.CellPipe (default: c.CellPipe from the Jupyter
            config files).
        home: cellpipe's home for local runs (default: $CELLPIPE_HOME).
        inventory: a launcher.gpus.Inventory to offer GPU types from (default: the configured
            types, with the cluster's counts fetched in the background where a Kubernetes
            configuration exists).
        shell: the IPython shell (its namespace helps find the notebook in VS Code).
    """

    poll_seconds = 5.0  # how often a cluster run's status is asked for

    def __init__(
        self,
        notebook: str | Path | None = None,
        *,
        engine: str | None = None,
        parameters: Sequence[str] = (),
        config: CellPipe | None = None,
        home: Path | None = None,
        inventory: Any = None,
        shell: Any = None,
    ) -> None:
        namespace = getattr(shell, "user_ns", None)
        try:
            self.notebook = find_notebook(notebook, namespace=namespace)
        except NotebookNotFound as exc:
            raise UserError(str(exc)) from None
        self.config = config if config is not None else load_config()
        self.home = home
        self.runner: BackgroundRunner | None = None  # made at the first submit
        self.types = configured_types(self.config.gpu_types, self.config.gpu_resource)
        self.record: Any = None  # the run's record (local) or JSON (cluster), once it ends
        self.run_id: str | None = None
        self.error: str | None = None
        self.progress: RunProgress | None = None
        self._thread: threading.Thread | None = None
        prepared = self._prepared()
        pipeline = prepared.pipeline
        preset = prepared.text_parameters(list(parameters))
        vocabulary = self.config.vocabulary()
        self.local_engines = list(vocabulary["local_engines"])
        self.cluster_engines = list(vocabulary["cluster_engines"])
        self.training_engines = set(vocabulary["training_engines"])
        engines = self.local_engines + self.cluster_engines
        chosen = engine or self.config.default_engine
        if chosen not in engines:
            raise UserError(f"no engine {chosen!r}; the engines are {', '.join(engines)}")
        self.engine = widgets.Dropdown(options=engines, value=chosen, description="engine")
        self.parameter_specs = dict(pipeline.parameters)
        self.parameter_widgets = {
            n: _parameter_widget(n, p.type, preset[n]) for n, p in pipeline.parameters.items()
        }
        self.gpu_widgets: dict[str, tuple[widgets.Dropdown, widgets.BoundedIntText]] = {}
        gpu_rows = []
        for step in pipeline.steps:
            gpu = step.resources.gpu
            kind = widgets.Dropdown(
                options=self._type_options(inventory, gpu.type if gpu else None),
                value=(gpu.type or "") if gpu else "",
                layout=widgets.Layout(width="45%"),
            )
            count = widgets.BoundedIntText(
                value=gpu.count if gpu else 0, min=0, max=1024, layout=widgets.Layout(width="15%")
            )
            self.gpu_widgets[step.name] = (kind, count)
            name = widgets.Label(step.name, layout=widgets.Layout(width="30%"))
            gpu_rows.append(widgets.HBox([name, count, kind]))
        self.workers = widgets.BoundedIntText(value=1, min=1, max=1024, description="workers")
        self.use_cache = widgets.Checkbox(value=True, description="reuse cached steps")
        self.submit_button = widgets.Button(
            description="Submit", button_style="primary", icon="play"
        )
        self.cancel_button = widgets.Button(description="Cancel", icon="stop", disabled=True)
        self.message = widgets.HTML()
        self.progress_box = widgets.VBox()
        self.header = widgets.HTML(self._header(pipeline))
        self.submit_button.on_click(lambda _button: self.submit())
        self.cancel_button.on_click(lambda _button: self.cancel())
        self.engine.observe(lambda _change: self._engine_changed(), names="value")
        self._engine_changed()
        sections: list[widgets.Widget] = [self.header, self.engine]
        if self.parameter_widgets:
            sections.append(widgets.HTML("<b>parameters</b>"))
            sections.extend(self.parameter_widgets.values())
        sections.append(widgets.HTML("<b>GPUs per step</b> (count, type)"))
        sections.extend(gpu_rows)
        sections += [
            self.workers,
            self.use_cache,
            widgets.HBox([self.submit_button, self.cancel_button]),
            self.message,
            self.progress_box,
        ]
        super().__init__(sections)
        if pipeline.errors:
            self.submit_button.disabled = True
            self._say_error(
                "; ".join(e.for_people(str(self.notebook.path)) for e in pipeline.errors)
            )
        if inventory is None and self.cluster_engines:
            self._fetch_inventory_in_background()

    # -- what the form shows ---------------------------------------------------------------------
    def _prepared(self) -> Prepared:
        """The notebook as saved now, compiled in the one precedence of settings."""
        return prepare_file(self.notebook.path, self.config, local_only=True)

    def _header(self, pipeline: Any) -> str:
        return (
            f"<b>{escape(pipeline.settings.name)}</b>: {len(pipeline.steps)} steps<br>"
            f'<span style="color:#6b7280">notebook: {escape(self.notebook.describe())}</span>'
        )

    def _type_options(self, inventory: Any, tagged: str | None) -> list[tuple[str, str]]:
        options = [("any type", "")]
        entries = [] if inventory is None else inventory.entries
        counts_known = bool(inventory is not None and inventory.counts_known)
        seen = set()
        for entry in entries:
            if entry.name is None or entry.name in seen:
                continue
            seen.add(entry.name)
            label = entry.display_name
            if counts_known:
                free = entry.free
                label += f" ({'?' if free is None else free} free of {entry.total})"
            options.append((label, entry.name))
        for known in self.types:
            if known.name not in seen:
                seen.add(known.name)
                options.append((known.display_name, known.name))
        if tagged and tagged not in seen:
            options.append((tagged, tagged))
        return options

    def _fetch_inventory_in_background(self) -> None:
        import os

        from cellpipe.launcher.k8s import KubeSettings, kubeconfig_path

        settings = KubeSettings(namespace=self.config.namespace)
        if kubeconfig_path(settings) is None and not os.environ.get("KUBERNETES_SERVICE_HOST"):
            return

        def fetch() -> None:
            try:
                inventory = cluster_inventory(
                    settings, self.types, self.config.gpu_resource, self.config.gpu_label
                )
                for kind, _count in self.gpu_widgets.values():
                    value = kind.value
                    kind.options = self._type_options(inventory, value or None)
                    kind.value = value
            except Exception as exc:  # the form works without counts; say why they are missing
                log.warning("cellpipe: the cluster's GPU counts could not be read: %r", exc)

        threading.Thread(target=fetch, name="cellpipe-gpu-inventory", daemon=True).start()

    def _engine_changed(self) -> None:
        engine = self.engine.value
        self.workers.disabled = engine not in self.training_engines
        self.use_cache.disabled = engine not in self.local_engines
        self.cancel_button.disabled = True

    def _say_error(self, text: str) -> None:
        self.error = text
        self.message.value = f'<pre style="color:#dc2626;white-space:pre-wrap">{escape(text)}</pre>'

    # -- values and submission -------------------------------------------------------------------
    def values(self) -> SubmitValues:
        """What the form says now, typed; ParameterError for a value that does not fit."""
        from cellpipe.converter.params import typed_value

        parameters: dict[str, Any] = {}
        for name, widget in self.parameter_widgets.items():
            spec = self.parameter_specs[name]
            if spec.type in ("list", "dict"):  # JSON text in the field
                parameters[name] = typed_value(spec, widget.value)
            else:
                parameters[name] = widget.value
        gpus = {
            step: (int(count.value), kind.value or None)
            for step, (kind, count) in self.gpu_widgets.items()
        }
        return SubmitValues(
            engine=self.engine.value,
            parameters=parameters,
            gpus=gpus,
            workers=int(self.workers.value),
            use_cache=bool(self.use_cache.value),
        )

    def submit(self) -> None:
        """Submit what the form says, in a background thread (the Submit button's action)."""
        if self._thread is not None and self._thread.is_alive():
            self._say_error("a run from this form is still going on")
            return
        try:
            values = self.values()
        except ValueError as exc:  # ParameterError
            self._say_error(str(exc))
            return
        self.error = None
        self.message.value = ""
        self.record = self.run_id = None
        self.submit_button.disabled = True
        self._thread = threading.Thread(
            target=self._work, args=(values,), name="cellpipe-form-run", daemon=True
        )
        self._thread.start()

    def wait(self, timeout: float | None = None) -> Any:
        """Wait for the submitted run to end; its record (local) or JSON (cluster)."""
        if self._thread is not None:
            self._thread.join(timeout)
        return self.record

    def cancel(self) -> None:
        """Stop the run (the Cancel button's action)."""
        if self.runner is not None and self.run_id is not None:
            if self.runner.is_active(self.run_id):
                self.runner.cancel(self.run_id)
            else:
                runs = self._runs()
                runs.cancel(runs.find(self.run_id))
        self.cancel_button.disabled = True

    def _work(self, values: SubmitValues) -> None:
        try:
            if values.engine in self.local_engines:
                self._run_here(values)
            else:
                self._submit_to_cluster(values)
        except Exception as exc:  # shown in the form: a background thread has no cell
            self._say_error(str(exc) if isinstance(exc, (UserError, ValueError)) else repr(exc))
        finally:
            self.submit_button.disabled = False
            self.cancel_button.disabled = True

    def _refreshed(self, values: SubmitValues) -> Prepared:
        """The notebook as saved now (it may have changed since the form was shown), with the
        form's GPU choices."""
        self.notebook = find_notebook(self.notebook.path)
        prepared = self._prepared()
        self.header.value = self._header(prepared.pipeline)
        prepared.raise_for_errors()
        apply_gpu_choices(
            prepared.pipeline, values.gpu_overrides(), self.types, self.config.gpu_resource
        )
        return prepared

    def _runner(self) -> BackgroundRunner:
        if self.runner is None:
            self.runner = BackgroundRunner(self.config, self.home, log=log)
        return self.runner

    def _runs(self) -> Runs:
        runner = self._runner()
        return Runs(self.config, home=runner.home, store=runner.store)

    def _follow(self, progress: RunProgress, run_id: str) -> RunRecord:
        """Wait for the run to end, showing each change; its record."""
        runner = self._runner()
        while True:
            record = runner.get(run_id)
            if record is None:
                raise UserError(f"run {run_id} is no longer recorded")
            if not runner.is_active(run_id):
                record, _ = self._runs().refresh(record)
            progress.show_run(record.to_json())
            if record.status in FINISHED and not runner.is_active(run_id):
                return record
            runner.wait(run_id, self.poll_seconds)

    def _run_here(self, values: SubmitValues) -> None:
        prepared = self._refreshed(values)
        runner = self._runner()
        progress = RunProgress([s.name for s in prepared.pipeline.steps])
        self.progress = progress
        self.progress_box.children = (progress,)
        placeholder = runner.submit(
            prepared,
            values.engine,
            values.parameters,
            use_cache=values.use_cache,
            listener=progress,
        )
        self.run_id = placeholder.run_id
        progress.title.value = escape(f"run {self.run_id}: Running ({values.engine})")
        self.cancel_button.disabled = not runner.cancellable(self.run_id)
        record = self._follow(progress, self.run_id)
        self.record = record
        if record.status != RunStatus.SUCCEEDED:
            failed = [s for s in record.steps.values() if s.status == RunStatus.FAILED]
            details = failed[0].details or failed[0].error if failed else record.error
            self._say_error(f"run {record.run_id} {record.status}: {details}")

    def _submit_to_cluster(self, values: SubmitValues) -> None:
        prepared = self._refreshed(values)
        runner = self._runner()
        options = SubmitOptions(values.engine, namespace=self.config.namespace)
        if values.engine in self.training_engines:
            options.workers = values.workers
        choices = SubmitChoices(options, parameters=values.parameters)
        submit = plan_submit(prepared, choices, self.config, runner.store, runner.home)
        placeholder = runner.submit_cluster(submit)
        self.run_id = placeholder.run_id
        progress = RunProgress(
            [s.name for s in prepared.pipeline.steps],
            f"run {self.run_id}: submitted ({values.engine})",
        )
        self.progress = progress
        self.progress_box.children = (progress,)
        self.cancel_button.disabled = False
        record = self._follow(progress, self.run_id)
        self.record = record.to_json()
        if record.status == RunStatus.FAILED and record.error:
            self._say_error(f"run {record.run_id} Failed: {record.error}")
