"""Tune records: a tune and its trials, kept in the run store's file (the `tunes` and
`tune_trials` tables of launcher/store.py). Each trial links to the ordinary run record of
its pipeline run (`run_id`), so `cellpipe status RUN` shows a trial as any run.

A store made before tunes existed gets the two tables when a tune first opens it (CREATE
TABLE IF NOT EXISTS, the statements of store.py's schema): no new column, no migration.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from .errors import NotFound
from .store import RunStore, TablesBeside, process_owner, store_error, table_statements
from .vocabulary import RunStatus

_TUNE_TABLES = table_statements("tunes", "tune_trials")


@dataclass
class TrialRecord:
    """One trial: its parameters, its run, its objective (None until it has one)."""

    trial: int
    parameters: dict[str, Any]
    status: str = RunStatus.PENDING.value
    run_id: str | None = None
    value: float | None = None
    seconds: float | None = None
    steps_ran: list[str] = field(default_factory=list)
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        if data["error"] is None:
            del data["error"]
        return data


@dataclass
class TuneRecord:
    """A tune: what it searches, how, and its trials (`cellpipe tune --format json`)."""

    tune_id: str
    notebook: str
    engine: str
    metric: str
    direction: str  # "maximize" | "minimize"
    algorithm: str
    search: dict[str, str]  # NAME -> SPACE, as given
    status: str = RunStatus.PENDING.value
    created: float = field(default_factory=time.time)
    finished: float | None = None
    settings: dict[str, Any] = field(default_factory=dict)  # trials, parallel, seed, goal, ...
    trials: list[TrialRecord] = field(default_factory=list)
    error: str | None = None
    external: dict[str, Any] = field(default_factory=dict)  # the Katib Experiment's place
    owner: str | None = field(default_factory=process_owner)

    @property
    def best(self) -> TrialRecord | None:
        scored = [t for t in self.trials if t.status == RunStatus.SUCCEEDED and t.value is not None]
        if not scored:
            return None
        pick = max if self.direction == "maximize" else min
        return pick(scored, key=lambda t: t.value if t.value is not None else 0.0)

    def to_json(self) -> dict[str, Any]:
        best = self.best
        return {
            "tune_id": self.tune_id,
            "objective": {"metric": self.metric, "direction": self.direction},
            "best": None
            if best is None
            else {"parameters": best.parameters, "value": best.value, "run_id": best.run_id},
            "trials": [t.to_json() for t in self.trials],
            "algorithm": self.algorithm,
            "status": self.status,
            "notebook": self.notebook,
            "engine": self.engine,
            "search": self.search,
            "settings": self.settings,
            "created": self.created,
            "finished": self.finished,
            "error": self.error,
            "external": self.external,
        }

    def _stored(self) -> dict[str, Any]:
        data = asdict(self)
        del data["trials"]
        return data

    @classmethod
    def _read(cls, data: dict[str, Any], trials: list[TrialRecord]) -> TuneRecord:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**{**known, "trials": trials})


class TuneStore(TablesBeside):
    """Tunes in the run store's SQLite file, beside the runs their trials are."""

    def __init__(self, runs: RunStore) -> None:
        super().__init__(runs, _TUNE_TABLES)

    def _write(self, statement: str, *args: Any) -> None:
        try:
            with self._using() as db:
                db.execute(statement, args)
        except sqlite3.DatabaseError as exc:
            raise store_error(self.path, exc) from None

    def save(self, tune: TuneRecord) -> None:
        """Record the tune (new or changed), not its trials."""
        self._write(
            "INSERT INTO tunes (tune_id, notebook, engine, status, created, finished, record) "
            "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(tune_id) DO UPDATE SET "
            "status = excluded.status, finished = excluded.finished, record = excluded.record",
            tune.tune_id,
            tune.notebook,
            tune.engine,
            tune.status,
            tune.created,
            tune.finished,
            json.dumps(tune._stored()),
        )

    def save_trial(self, tune_id: str, trial: TrialRecord) -> None:
        self._write(
            "INSERT INTO tune_trials (tune_id, trial, run_id, status, record) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT(tune_id, trial) DO UPDATE SET "
            "run_id = excluded.run_id, status = excluded.status, record = excluded.record",
            tune_id,
            trial.trial,
            trial.run_id,
            trial.status,
            json.dumps(asdict(trial)),
        )

    def request_cancel(self, tune_id: str) -> None:
        """Ask the process running a local tune to stop after its running trials."""
        self._write(
            "UPDATE tunes SET record = "
            "json_set(record, '$.settings.cancel_requested', json('true')) WHERE tune_id = ?",
            tune_id,
        )

    def cancel_requested(self, tune_id: str) -> bool:
        try:
            with self._using() as db:
                row = db.execute(
                    "SELECT json_extract(record, '$.settings.cancel_requested') FROM tunes "
                    "WHERE tune_id = ?",
                    (tune_id,),
                ).fetchone()
        except sqlite3.DatabaseError as exc:
            raise store_error(self.path, exc) from None
        return bool(row and row[0])

    def get(self, tune_id: str) -> TuneRecord | None:
        try:
            with self._using() as db:
                row = db.execute(
                    "SELECT record FROM tunes WHERE tune_id = ?", (tune_id,)
                ).fetchone()
                rows = db.execute(
                    "SELECT record FROM tune_trials WHERE tune_id = ? ORDER BY trial", (tune_id,)
                ).fetchall()
        except sqlite3.DatabaseError as exc:
            raise store_error(self.path, exc) from None
        if row is None:
            return None
        trials = [TrialRecord(**json.loads(r[0])) for r in rows]
        return TuneRecord._read(json.loads(row[0]), trials)

    def list(self, notebook: str | None = None) -> list[TuneRecord]:
        """Tunes, newest first (of one notebook's path, when given)."""
        query = "SELECT tune_id FROM tunes"
        args: tuple[str, ...] = ()
        if notebook is not None:
            query, args = query + " WHERE notebook = ?", (notebook,)
        try:
            with self._using() as db:
                ids = [r[0] for r in db.execute(query + " ORDER BY created DESC", args)]
        except sqlite3.DatabaseError as exc:
            raise store_error(self.path, exc) from None
        return [t for t in (self.get(i) for i in ids) if t is not None]

    def find(self, text: str) -> TuneRecord:
        """The tune `text` names: its id, or the start of exactly one tune's id."""
        found = self.get(text)
        if found is not None:
            return found
        matching = [t for t in self.list() if text and t.tune_id.startswith(text)]
        if len(matching) == 1:
            return matching[0]
        if matching:
            raise NotFound(f"{text!r} is the start of several tunes' ids; say more")
        raise NotFound(f"no tune {text!r} (`cellpipe runs` lists tunes and runs)")

    def delete(self, tune_id: str) -> TuneRecord | None:
        """Forget a tune and its trials' runs (their records and folders)."""
        tune = self.get(tune_id)
        if tune is None:
            return None
        for trial in tune.trials:
            if trial.run_id:
                self.runs.delete(trial.run_id)
        self._write("DELETE FROM tune_trials WHERE tune_id = ?", tune_id)
        self._write("DELETE FROM tunes WHERE tune_id = ?", tune_id)
        return tune


def new_tune_id() -> str:
    """Tune ids look like run ids with a `tune-` prefix, so the two never collide."""
    from .store import new_run_id

    return f"tune-{new_run_id()}"  # tuning.TUNE_PREFIX
