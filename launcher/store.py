"""Run records in SQLite: every run, whatever its engine, and the status of each step.

A run is recorded before it reaches its engine, so one that never gets there is still kept,
as Failed, with its error and its compiled pipeline.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import time
import uuid
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

STATUSES = ("Pending", "Running", "Succeeded", "Failed", "Cancelled")
SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    notebook TEXT NOT NULL,
    pipeline TEXT NOT NULL,
    engine TEXT NOT NULL,
    status TEXT NOT NULL,
    created REAL NOT NULL,
    finished REAL,
    parameters TEXT NOT NULL,
    metrics TEXT NOT NULL DEFAULT '{}',
    error TEXT,
    outputs TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS steps (
    run_id TEXT NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    task TEXT NOT NULL,
    status TEXT NOT NULL,
    cached INTEGER NOT NULL DEFAULT 0,
    seconds REAL,
    error TEXT,
    details TEXT,
    outputs TEXT,
    PRIMARY KEY (run_id, task)
);
"""


def cellpipe_home() -> Path:
    """Where runs and the step cache live: $CELLPIPE_HOME, else the XDG data folder."""
    explicit = os.environ.get("CELLPIPE_HOME")
    if explicit:
        return Path(explicit)
    data = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data) / "cellpipe"


def new_run_id() -> str:
    """A fresh run id: sortable by time, unique by its random tail."""
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}"


@dataclass
class StepRecord:
    name: str
    task: str
    status: str = "Pending"
    cached: bool = False
    seconds: float | None = None
    error: str | None = None
    details: str | None = None
    outputs: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "status": self.status,
            "cached": self.cached,
            "seconds": self.seconds,
            "error": self.error,
        }


@dataclass
class RunRecord:
    run_id: str
    notebook: str
    pipeline: str
    engine: str
    status: str
    created: float
    outputs: str
    parameters: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    finished: float | None = None
    error: str | None = None
    steps: dict[str, StepRecord] = field(default_factory=dict)  # by display name

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "notebook": self.notebook,
            "pipeline": self.pipeline,
            "engine": self.engine,
            "status": self.status,
            "created": self.created,
            "finished": self.finished,
            "parameters": self.parameters,
            "metrics": self.metrics,
            "error": self.error,
            "steps": {name: step.to_json() for name, step in self.steps.items()},
            "outputs": self.outputs,
        }


class RunStore:
    def __init__(self, path: Path | None = None) -> None:
        self.path = path or cellpipe_home() / "runs.sqlite"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with closing(self._connect()) as db, db:
            if db.execute("PRAGMA user_version").fetchone()[0] < SCHEMA_VERSION:
                db.executescript(_SCHEMA)
                db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=30)
        db.execute("PRAGMA foreign_keys = ON")
        return db

    def create(
        self,
        notebook: str,
        pipeline: str,
        engine: str,
        parameters: dict[str, Any],
        steps: list[tuple[str, str]],
        outputs_root: Path,
        run_id: str | None = None,
    ) -> RunRecord:
        """Record a new run as Pending; `run_id` is one chosen earlier (new_run_id) or a new one."""
        run_id = run_id or new_run_id()
        record = RunRecord(
            run_id=run_id,
            notebook=notebook,
            pipeline=pipeline,
            engine=engine,
            status="Pending",
            created=time.time(),
            outputs=str(outputs_root / run_id),
            parameters=parameters,
            steps={name: StepRecord(name, task) for name, task in steps},
        )
        with closing(self._connect()) as db, db:
            db.execute(
                "INSERT INTO runs (run_id, notebook, pipeline, engine, status, created, "
                "parameters, outputs) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    run_id,
                    notebook,
                    pipeline,
                    engine,
                    "Pending",
                    record.created,
                    json.dumps(parameters),
                    record.outputs,
                ),
            )
            db.executemany(
                "INSERT INTO steps (run_id, name, task, status) VALUES (?, ?, ?, 'Pending')",
                [(run_id, name, task) for name, task in steps],
            )
        return record

    def update_run(self, record: RunRecord) -> None:
        with closing(self._connect()) as db, db:
            db.execute(
                "UPDATE runs SET status = ?, finished = ?, metrics = ?, error = ? WHERE run_id = ?",
                (
                    record.status,
                    record.finished,
                    json.dumps(record.metrics),
                    record.error,
                    record.run_id,
                ),
            )

    def update_step(self, run_id: str, step: StepRecord) -> None:
        with closing(self._connect()) as db, db:
            db.execute(
                "UPDATE steps SET status = ?, cached = ?, seconds = ?, error = ?, details = ?, "
                "outputs = ? WHERE run_id = ? AND task = ?",
                (
                    step.status,
                    int(step.cached),
                    step.seconds,
                    step.error,
                    step.details,
                    step.outputs,
                    run_id,
                    step.task,
                ),
            )

    def get(self, run_id: str) -> RunRecord | None:
        with closing(self._connect()) as db:
            row = db.execute(
                "SELECT run_id, notebook, pipeline, engine, status, created, outputs, "
                "parameters, metrics, finished, error FROM runs WHERE run_id = ?",
                (run_id,),
            ).fetchone()
            if row is None:
                return None
            steps = db.execute(
                "SELECT name, task, status, cached, seconds, error, details, outputs "
                "FROM steps WHERE run_id = ? ORDER BY rowid",
                (run_id,),
            ).fetchall()
        record = RunRecord(
            run_id=row[0],
            notebook=row[1],
            pipeline=row[2],
            engine=row[3],
            status=row[4],
            created=row[5],
            outputs=row[6],
            parameters=json.loads(row[7]),
            metrics=json.loads(row[8]),
            finished=row[9],
            error=row[10],
        )
        record.steps = {
            s[0]: StepRecord(s[0], s[1], s[2], bool(s[3]), s[4], s[5], s[6], s[7]) for s in steps
        }
        return record

    def list(self, notebook: str | None = None) -> list[RunRecord]:
        with closing(self._connect()) as db:
            query = "SELECT run_id FROM runs"
            args: tuple[str, ...] = ()
            if notebook is not None:
                query += " WHERE notebook = ?"
                args = (notebook,)
            ids = [r[0] for r in db.execute(query + " ORDER BY created DESC", args)]
        return [r for r in (self.get(i) for i in ids) if r is not None]

    def delete(self, run_id: str) -> RunRecord | None:
        """Forget a run and remove its folder (runs/RUN_ID); returns what was deleted.

        Step outputs in the step cache are shared by every run that reuses them, so they stay
        (deleting cache/ is always safe on its own). Only a folder named for the run is removed.
        """
        record = self.get(run_id)
        if record is None:
            return None
        with closing(self._connect()) as db, db:
            db.execute("DELETE FROM steps WHERE run_id = ?", (run_id,))
            db.execute("DELETE FROM runs WHERE run_id = ?", (run_id,))
        outputs = Path(record.outputs)
        if outputs.name == run_id and outputs.is_dir() and not outputs.is_symlink():
            shutil.rmtree(outputs)
        return record
