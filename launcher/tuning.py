"""Tuning a notebook's pipeline: the launcher API behind `cellpipe tune`, `%cellpipe tune`
and POST /tunes.

`plan_tune` (launcher/tune_plan.py) checks a request against the notebook and splits the
steps trials rerun from those they share. `tune_here` runs the trials with the
local engine: each trial is an ordinary run (recorded, linked to its tune), side by side up to
`parallel`. The steps that depend on no tuned parameter run once: the first trial runs alone
and the step cache (which keys a step by the parameters it reads and the keys of the steps
before it) hands their values to every later trial; each trial says which steps it ran.

`--engine katib` is launcher/katib.py: the same plan, as a Katib Experiment.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

from .config import CellPipe
from .errors import Conflict, UserError
from .local_engine import RunRequest
from .running import engine_here
from .store import RunRecord, cellpipe_home, new_run_id, open_store, owner_alive
from .tune_plan import (
    DEFAULT_MAX_FAILED,
    DEFAULT_TRIALS,
    TunePlan,
    TuneRequest,
    depending_steps,
    plan_tune,
)
from .tune_records import TrialRecord, TuneRecord, TuneStore
from .tune_spaces import suggester
from .vocabulary import FINISHED, KATIB_ENGINE, LOCAL_ENGINE, UNFINISHED, RunStatus

# (event, tune, trial): "started", "trial" (a trial started or ended), "ended"
TuneListener = Callable[[str, TuneRecord, TrialRecord | None], None]


# --- the local engine -------------------------------------------------------------------


class _Trials:
    """The trials of one tune as they run: asks the algorithm, records each trial's end."""

    def __init__(self, plan: TunePlan, tune: TuneRecord, tunes: TuneStore, say: TuneListener):
        self.plan, self.tune, self.tunes, self.say = plan, tune, tunes, say
        request = plan.request
        self.suggester = suggester(
            request.algorithm, plan.spaces, seed=request.seed, maximize=plan.maximize
        )
        self.lock = threading.Lock()
        self.exhausted = False
        self.stop_reason: str | None = None
        self.cancels: dict[int, threading.Event] = {}

    def next_trial(self) -> TrialRecord | None:
        if self.stop_reason or self.exhausted or len(self.tune.trials) >= self.plan.trials:
            return None
        parameters = self.suggester.ask()
        if parameters is None:
            self.exhausted = True
            return None
        trial = TrialRecord(len(self.tune.trials) + 1, parameters, RunStatus.RUNNING.value)
        trial.run_id = new_run_id()
        self.tune.trials.append(trial)
        self.cancels[trial.trial] = threading.Event()
        self.tunes.save_trial(self.tune.tune_id, trial)
        return trial

    def ended(self, trial: TrialRecord, record: RunRecord | None, error: str | None) -> None:
        """Record a trial's end; decide whether the search stops (goal, failures)."""
        _read_outcome(trial, record, error, self.plan.request.objective)
        with self.lock:
            self.tunes.save_trial(self.tune.tune_id, trial)
            self.suggester.tell(trial.parameters, trial.value)
            self._check_stop(trial)
        self.say("trial", self.tune, trial)

    def _check_stop(self, trial: TrialRecord) -> None:
        request = self.plan.request
        failed = sum(t.status == RunStatus.FAILED for t in self.tune.trials)
        if failed > request.max_failed:
            self.stop_reason = (
                f"{failed} trials failed (more than --max-failed {request.max_failed})"
            )
        goal = request.goal
        if goal is not None and trial.value is not None and trial.status == RunStatus.SUCCEEDED:
            reached = trial.value >= goal if self.plan.maximize else trial.value <= goal
            if reached:
                self.stop_reason = self.stop_reason or "goal"


def _read_outcome(
    trial: TrialRecord, record: RunRecord | None, error: str | None, objective: str
) -> None:
    if record is None:
        trial.status, trial.error = RunStatus.FAILED.value, error or "the trial did not run"
        return
    trial.seconds = round((record.finished or time.time()) - record.created, 3)
    trial.steps_ran = [
        s.name for s in record.steps.values() if not s.cached and s.status != "Pending"
    ]
    trial.status, trial.error = record.status, record.error
    value = record.metrics.get(objective)
    if record.status == RunStatus.SUCCEEDED:
        if isinstance(value, (int, float)) and math.isfinite(value):
            trial.value = float(value)
        else:
            trial.status = RunStatus.FAILED.value
            trial.error = f"the run reported no number for the objective {objective!r}"


def tune_here(
    plan: TunePlan,
    config: CellPipe,
    *,
    home: Path | None = None,
    listener: TuneListener | None = None,
) -> TuneRecord:
    """Run the tune's trials with the local engine; the tune's record as it ended.

    Ctrl-C (KeyboardInterrupt) or `request.cancel` stops the search after the running trials,
    keeping what finished; a second Ctrl-C stops the running trials too."""
    home = home or cellpipe_home()
    store = open_store(home)
    tunes = TuneStore(store)
    tune = plan.new_record()
    say = listener or (lambda event, tune, trial: None)
    tune.status = RunStatus.RUNNING.value
    tunes.save(tune)
    say("started", tune, None)
    trials = _Trials(plan, tune, tunes, say)
    engine = engine_here(LOCAL_ENGINE, config, home=home, store=store)

    def run_trial(trial: TrialRecord) -> RunRecord:
        request = RunRequest(
            plan.prepared.pipeline,
            plan.prepared.path or Path(plan.prepared.name),
            dict(trial.parameters),
            run_id=trial.run_id,
            cancel=trials.cancels[trial.trial],
            source=plan.prepared.notebook,
        )
        return engine.run(request)

    interrupted = False
    try:
        _search(plan, trials, run_trial)
    except KeyboardInterrupt:
        interrupted = True
    _finish(tune, trials, interrupted or plan.request.cancel.is_set())
    tunes.save(tune)
    say("ended", tune, None)
    return tune


def _search(plan: TunePlan, trials: _Trials, run_trial: Callable[[TrialRecord], RunRecord]) -> None:
    """Keep up to `parallel` trials running until the search ends. The first trial runs
    alone when steps are shared: its run leaves them in the step cache for the rest."""
    cancel = plan.request.cancel
    width = 1 if plan.shared_steps else plan.parallel
    running: dict[Future[RunRecord], TrialRecord] = {}
    with ThreadPoolExecutor(max_workers=plan.parallel, thread_name_prefix="cellpipe-trial") as pool:
        try:
            while True:
                while len(running) < width and not cancel.is_set():
                    trial = trials.next_trial()
                    if trial is None:
                        break
                    running[pool.submit(run_trial, trial)] = trial
                    trials.say("trial", trials.tune, trial)
                if not running:
                    return
                done, _ = wait(running, timeout=0.2, return_when=FIRST_COMPLETED)
                for future in done:
                    _collect(trials, running.pop(future), future)
                    width = plan.parallel
                if trials.tunes.cancel_requested(trials.tune.tune_id):  # `cellpipe cancel`
                    cancel.set()
        except KeyboardInterrupt:
            _stop_after_running(trials, running)
            raise


def _collect(trials: _Trials, trial: TrialRecord, future: Future[RunRecord]) -> None:
    try:
        record, error = future.result(), None
    except UserError as exc:
        record, error = None, exc.message
    except Exception as exc:  # a trial that could not run is a failed trial, not the end
        record, error = None, repr(exc)
    if record is None and trial.run_id:
        record = trials.tunes.runs.get(trial.run_id)
    trials.ended(trial, record, error)


def _stop_after_running(trials: _Trials, running: dict[Future[RunRecord], TrialRecord]) -> None:
    """Ctrl-C: no new trials; the running ones finish (a second Ctrl-C cancels them)."""
    trials.stop_reason = "interrupted"
    while running:
        try:
            done, _ = wait(running, timeout=0.2, return_when=FIRST_COMPLETED)
        except KeyboardInterrupt:
            for trial in running.values():
                trials.cancels[trial.trial].set()
            continue
        for future in done:
            _collect(trials, running.pop(future), future)


def _finish(tune: TuneRecord, trials: _Trials, interrupted: bool) -> None:
    tune.finished = time.time()
    for trial in tune.trials:  # asked for, never started (Ctrl-C came between)
        if trial.status == RunStatus.RUNNING and trials.tunes.runs.get(trial.run_id or "") is None:
            trial.status, trial.error = RunStatus.CANCELLED.value, "the tune stopped before it ran"
            trials.tunes.save_trial(tune.tune_id, trial)
    reason = trials.stop_reason
    succeeded = [t for t in tune.trials if t.status == RunStatus.SUCCEEDED]
    if interrupted or reason == "interrupted":
        tune.status, tune.error = (
            RunStatus.CANCELLED.value,
            "cancelled: the trials that finished are kept",
        )
    elif reason and reason != "goal":
        tune.status, tune.error = RunStatus.FAILED.value, reason
    elif not succeeded:
        tune.status, tune.error = RunStatus.FAILED.value, "no trial succeeded"
    else:
        tune.status = RunStatus.SUCCEEDED.value
        if reason == "goal":
            tune.error = None
            tune.settings["stopped"] = "the goal was reached"


def open_tunes(home: Path | None = None) -> TuneStore:
    """The tunes of `home`'s run store."""
    return TuneStore(open_store(home or cellpipe_home()))


TUNE_PREFIX = "tune-"  # tune ids start with it (new_tune_id); run ids never do


def is_tune_id(text: str) -> bool:
    return text.startswith(TUNE_PREFIX)


def refresh_tune(tune: TuneRecord, tunes: TuneStore, kube: Any = None) -> TuneRecord:
    """A Katib tune as the cluster has it now; a local one as stored (a tune whose process
    died while it ran is Failed, saying so)."""
    if tune.engine == KATIB_ENGINE:
        from .katib import refresh_katib

        return refresh_katib(tune, tunes, kube)
    if tune.status in UNFINISHED and owner_alive(tune.owner) is False:
        tune.status, tune.finished = RunStatus.FAILED.value, time.time()
        tune.error = "the process that ran this tune ended before it did"
        tunes.save(tune)
    return tune


def cancel_tune(tune: TuneRecord, tunes: TuneStore, kube: Any = None) -> TuneRecord:
    """Stop a tune after its running trials: a Katib tune's Experiment is deleted; a local
    tune's process (the CLI's, the server's) is asked through the store and stops at once."""
    if tune.status in FINISHED:
        raise Conflict(f"tune {tune.tune_id} has already ended ({tune.status})")
    if tune.engine == KATIB_ENGINE:
        from .katib import cancel_katib

        return cancel_katib(tune, tunes, kube)
    tunes.request_cancel(tune.tune_id)
    return tunes.get(tune.tune_id) or tune


def delete_tune(tune: TuneRecord, tunes: TuneStore, kube: Any = None) -> list[str]:
    """Forget a tune and its trials' runs; a Katib tune's objects in the cluster too."""
    running_here = tune.engine != KATIB_ENGINE and owner_alive(tune.owner) is not False
    if tune.status in UNFINISHED and running_here:
        raise Conflict(f"tune {tune.tune_id} is still running: cancel it first")
    removed: list[str] = []
    if tune.engine == KATIB_ENGINE:
        from .katib import delete_katib

        removed = delete_katib(tune, kube)
    tunes.delete(tune.tune_id)
    return removed


__all__: list[Any] = [
    "DEFAULT_MAX_FAILED",
    "DEFAULT_TRIALS",
    "TunePlan",
    "TuneRequest",
    "depending_steps",
    "open_tunes",
    "plan_tune",
    "tune_here",
]
