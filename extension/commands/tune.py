"""`cellpipe tune`: search a notebook's parameters for the best value of one of its metrics,
here (the local engine, trials side by side) or as a Katib Experiment on the cluster.

On a terminal the trials' table is redrawn in place (trial, parameters, objective, best so
far); otherwise one line per trial as it ends. `--format json` prints the tune's record.
"""

from __future__ import annotations

import argparse
import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from cellpipe.launcher.config import load_config
from cellpipe.launcher.notebooks import prepare_file
from cellpipe.launcher.tune_records import TrialRecord, TuneRecord
from cellpipe.launcher.tuning import TuneListener, TunePlan, TuneRequest, plan_tune, tune_here
from cellpipe.launcher.vocabulary import FINISHED, KATIB_ENGINE, RunStatus

from .outcome import EXIT_FAILED, EXIT_OK, Outcome
from .terminal import terminal_safe, unfiltered

TUNE_JSON_KEYS = ("tune_id", "objective", "best", "trials", "algorithm")


def tune_request(args: argparse.Namespace) -> TuneRequest:
    """The parsed command line as a TuneRequest."""
    return TuneRequest(
        objective=args.objective,
        direction="minimize" if args.minimize else "maximize",
        search=list(args.search),
        trials=args.trials,
        parallel=args.parallel,
        algorithm=args.algorithm,
        seed=args.seed,
        goal=args.goal,
        max_failed=args.max_failed,
        engine=args.engine,
    )


def tune_command(
    args: argparse.Namespace,
    out: TextIO,
    err: TextIO,
    display: Callable[[TunePlan], TuneListener] | None = None,
) -> Outcome:
    """`display(plan)`: a front door's own view of the trials (the magic's widget)."""
    config = load_config()
    notebook = Path(args.notebook)
    prepared = prepare_file(notebook, config, local_only=args.engine != KATIB_ENGINE)
    plan = plan_tune(prepared, tune_request(args))
    for warning in prepared.pipeline.warnings:
        print(f"cellpipe: warning: {warning.for_people(str(notebook))}", file=err)
    if args.engine == KATIB_ENGINE:
        return _katib_command(plan, args, config, out, err)
    if args.format != "json":
        _say_plan(plan, err)
    listener = display(plan) if display else _listener_for(plan, args, out)
    tune = tune_here(plan, config, listener=listener)
    close = getattr(listener, "close", None)
    if close:
        close()
    return finish(tune, args.format, out, err)


def finish(tune: TuneRecord, output: str, out: TextIO, err: TextIO) -> Outcome:
    """Print the tune's outcome; the exit status says whether it found a best trial."""
    data = tune.to_json()
    if output == "json":
        print(
            json.dumps({k: data[k] for k in TUNE_JSON_KEYS} | {"status": tune.status}, indent=2),
            file=out,
        )
    else:
        _summary(tune, out)
    for trial in tune.trials:
        if trial.status == RunStatus.FAILED and output != "json":
            print(f"cellpipe: trial {trial.trial} failed: {trial.error}", file=err)
    if tune.error and tune.status != RunStatus.SUCCEEDED:
        print(f"cellpipe: tune {tune.tune_id} {tune.status}: {tune.error}", file=err)
    ok = tune.status == RunStatus.SUCCEEDED or (
        tune.status == RunStatus.CANCELLED and tune.best is not None
    )
    return Outcome(EXIT_OK if ok else EXIT_FAILED, data)


def _say_plan(plan: TunePlan, err: TextIO) -> None:
    shared = ", ".join(s.name for s in plan.shared_steps) or "none"
    tuned = ", ".join(s.name for s in plan.tuned_steps)
    print(
        f"cellpipe: {plan.trials} trials, {plan.parallel} at a time ({plan.request.algorithm}); "
        f"run once: {terminal_safe(shared)}; every trial: {terminal_safe(tuned)}",
        file=err,
    )
    uncached = [s.name for s in plan.uncached_steps]
    if uncached:
        print(
            "cellpipe: note: kept out of the step cache by the notebook (cache:false or Kale's "
            "enable_caching: false), so run in every trial, as trials here share steps through "
            f"the cache: {terminal_safe(', '.join(uncached))}",
            file=err,
        )


def _summary(tune: TuneRecord, out: TextIO) -> None:
    print(f"tune {tune.tune_id}: {tune.status}", file=out)
    best = tune.best
    if best is None:
        print("  no trial succeeded", file=out)
        return
    print(
        f"  best {tune.metric} = {best.value:g} (trial {best.trial}, run {best.run_id})", file=out
    )
    for name, value in best.parameters.items():
        print(f"  {terminal_safe(name)} = {_value(value)}", file=out)


def _value(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else terminal_safe(str(value))


def trial_cells(trial: TrialRecord, tune: TuneRecord) -> list[str]:
    """A trial's row: number, parameters, objective, status, steps it ran."""
    parameters = " ".join(f"{k}={_value(v)}" for k, v in trial.parameters.items())
    value = "" if trial.value is None else f"{trial.value:g}"
    return [str(trial.trial), parameters, value, trial.status, ", ".join(trial.steps_ran)]


class PlainTrials:
    """One line per trial as it ends, and the best so far."""

    def __init__(self, out: TextIO) -> None:
        self.out = out

    def __call__(self, event: str, tune: TuneRecord, trial: TrialRecord | None) -> None:
        if event != "trial" or trial is None or trial.status == RunStatus.RUNNING:
            return
        number, parameters, value, status, ran = trial_cells(trial, tune)
        best = tune.best
        best_text = (
            f"  best {best.value:g} (trial {best.trial})" if best and best.value is not None else ""
        )
        line = f"  trial {number} {status}: {parameters} -> {tune.metric} {value or '-'}"
        print(f"{line}  ran: {terminal_safe(ran)}{best_text}", file=self.out, flush=True)


class TerminalTrials:
    """Every trial's row, redrawn in place as trials start and end."""

    def __init__(self, out: TextIO, metric: str) -> None:
        self.out, self.metric = out, metric
        self.lock = threading.Lock()
        self.drawn = 0

    def __call__(self, event: str, tune: TuneRecord, trial: TrialRecord | None) -> None:
        with self.lock:
            rows = [trial_cells(t, tune) for t in tune.trials]
            best = tune.best
            header = ["trial", "parameters", self.metric, "status", "steps ran"]
            widths = [max(len(r[i]) for r in [header, *rows]) for i in range(5)]
            lines = [header, *rows]
            text = "".join(
                "\x1b[2K  " + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + "\n"
                for r in lines
            )
            best_line = (
                f"best so far: {best.value:g} (trial {best.trial})"
                if best and best.value is not None
                else ""
            )
            text += f"\x1b[2K  {best_line}\n"
            up = f"\x1b[{self.drawn}F" if self.drawn else ""
            stream = unfiltered(self.out)  # cellpipe's own cursor moves; the cells are made safe
            stream.write(up + text)
            stream.flush()
            self.drawn = len(lines) + 1


def _listener_for(plan: TunePlan, args: argparse.Namespace, out: TextIO) -> TuneListener | None:
    if args.format == "json":
        return None
    if getattr(out, "isatty", lambda: False)():
        return TerminalTrials(out, plan.request.objective)
    return PlainTrials(out)


# --- on the cluster: a Katib Experiment ---------------------------------------------------


def _katib_command(
    plan: TunePlan, args: argparse.Namespace, config: Any, out: TextIO, err: TextIO
) -> Outcome:
    """Plan the Experiment; print it (--dry-run) or send it and follow its trials."""
    from cellpipe.launcher.k8s import KubeSettings, to_yaml
    from cellpipe.launcher.katib import submit_katib, watch_katib
    from cellpipe.launcher.katib_objects import plan_katib
    from cellpipe.launcher.tuning import open_tunes

    kube = KubeSettings(args.kubeconfig, args.context, args.namespace or config.namespace)
    tune = plan.new_record()
    options = katib_options(plan, args, config, kube, err)
    katib = plan_katib(plan, tune.tune_id, options)
    if args.dry_run:
        if args.format == "json":
            print(json.dumps({"dry_run": True, "objects": katib.dicts()}, indent=2), file=out)
        else:
            print(to_yaml(katib.objects), file=out, end="")
        return Outcome(EXIT_OK, {"dry_run": True, "objects": katib.dicts()})
    tunes = open_tunes()
    tune = submit_katib(tune, katib, tunes, kube)
    if tune.status == RunStatus.FAILED:
        return finish(tune, args.format, out, err)
    print(
        f"cellpipe: tune {tune.tune_id}: Experiment {katib.names.job} in namespace "
        f"{katib.namespace} ({katib.gpus_per_trial} GPU(s) per trial)",
        file=err,
    )
    follow = _listener_for(plan, args, out)
    last: dict[int, str] = {}

    def on_change(changed: TuneRecord) -> None:
        for trial in changed.trials:
            if follow and last.get(trial.trial) != trial.status:
                last[trial.trial] = trial.status
                follow("trial", changed, trial)

    try:
        tune = watch_katib(tune, tunes, kube, on_change=on_change)
    except KeyboardInterrupt:
        print(f"cellpipe: stopped following; `cellpipe status {tune.tune_id}` goes on", file=err)
    return finish(tune, args.format, out, err)


def katib_options(
    plan: TunePlan, args: argparse.Namespace, config: Any, kube: Any, err: TextIO
) -> Any:
    """Where the Experiment runs and in which image: --image as it is, else built as
    `cellpipe submit` builds it (with --dry-run, the image a build would make)."""
    from cellpipe.launcher.katib import namespace_of
    from cellpipe.launcher.katib_objects import KatibOptions
    from cellpipe.launcher.registry import checked_reference
    from cellpipe.launcher.running import image_for_run

    prepared = plan.prepared
    if args.image:
        image = checked_reference(args.image, "--image")
    elif args.dry_run:
        image = prepared.pipeline.image
    else:
        image = image_for_run(
            prepared,
            config,
            lambda message: print(f"  {message}", file=err),
            registry=args.registry,
            builder=args.builder,
        )
    return KatibOptions(
        namespace=namespace_of(kube),
        image=image,
        pvc=args.pvc,
        storage_size=args.storage_size,
        gpu_resource=config.gpu_resource,
        gpu_label=config.gpu_label,
        gpu_tolerations=config.gpu_tolerations,
    )


# --- `cellpipe runs | status | cancel | delete` for tunes ------------------------------------


def _kube_of(args: argparse.Namespace) -> Any:
    from cellpipe.launcher.k8s import KubeSettings

    return KubeSettings(getattr(args, "kubeconfig", None), getattr(args, "context", None), None)


def tune_status_command(args: argparse.Namespace, out: TextIO, err: TextIO) -> Outcome:
    """`cellpipe status TUNE`: the tune (a Katib one as the cluster has it), its trials."""
    from cellpipe.launcher.tuning import open_tunes, refresh_tune

    tunes = open_tunes()
    tune = tunes.find(args.run)
    if not getattr(args, "no_refresh", False):
        tune = refresh_tune(tune, tunes, _kube_of(args))
    if args.format == "json":
        print(json.dumps(tune.to_json(), indent=2), file=out)
        return Outcome(EXIT_OK, tune.to_json())
    print(f"tune {tune.tune_id}: {tune.status} ({tune.engine}, {tune.algorithm})", file=out)
    print(f"  notebook: {tune.notebook}", file=out)
    print(f"  objective: {tune.direction} {tune.metric}", file=out)
    for name, space in tune.search.items():
        print(f"  search: {terminal_safe(name)} = {terminal_safe(space)}", file=out)
    listing = PlainTrials(out)
    for trial in tune.trials:
        listing("trial", tune, trial)
    if tune.error:
        print(f"  error: {tune.error}", file=out)
    _summary(tune, out)
    return Outcome(EXIT_OK, tune.to_json())


def tune_cancel_command(args: argparse.Namespace, out: TextIO, err: TextIO) -> Outcome:
    from cellpipe.launcher.tuning import cancel_tune, open_tunes

    tunes = open_tunes()
    tune = cancel_tune(tunes.find(args.run), tunes, _kube_of(args))
    data = tune.to_json()
    if args.format == "json":
        print(json.dumps(data, indent=2), file=out)
    else:
        said = "stops after its running trials" if tune.status not in FINISHED else tune.status
        print(f"tune {tune.tune_id}: {said}", file=out)
    return Outcome(EXIT_OK, data)


def tune_delete_command(args: argparse.Namespace, out: TextIO, err: TextIO) -> Outcome:
    from cellpipe.launcher.tuning import delete_tune, open_tunes

    tunes = open_tunes()
    tune = tunes.find(args.run)
    removed = delete_tune(tune, tunes, _kube_of(args))
    print(f"deleted tune {tune.tune_id} and its {len(tune.trials)} trials' runs", file=out)
    for what in removed:
        print(f"  and {what}", file=out)
    return Outcome(EXIT_OK, {"tune_id": tune.tune_id, "deleted": removed})


def tunes_listed(notebook: str | None, status: str | None, engine: str | None) -> list[TuneRecord]:
    """The tunes `cellpipe runs` shows beside the runs, filtered as they are."""
    from cellpipe.launcher.tuning import open_tunes

    return [
        t
        for t in open_tunes().list(notebook)
        if (status is None or t.status == status) and (engine is None or t.engine == engine)
    ]


def print_tunes(tunes: list[TuneRecord], out: TextIO) -> None:
    """The tunes under the runs, in the same width: id, engine, status and trials whole."""
    from .terminal import print_fitted_table, safe_text, status_text

    print("", file=out)
    widths = {"TUNE": max(len(t.tune_id) for t in tunes), "ENGINE": 6, "STATUS": 9, "TRIALS": 6}
    rows = [
        [
            safe_text(tune.tune_id),
            safe_text(tune.engine),
            status_text(tune.status),
            safe_text(str(len(tune.trials))),
            safe_text(_best_and_notebook(tune)),
        ]
        for tune in tunes
    ]
    print_fitted_table(out, widths, "BEST (NOTEBOOK)", rows)


def _best_and_notebook(tune: TuneRecord) -> str:
    best = tune.best
    notebook = Path(tune.notebook).name
    if best is None or best.value is None:
        return f"- ({notebook})"
    return f"{tune.metric} {best.value:g} ({notebook})"
