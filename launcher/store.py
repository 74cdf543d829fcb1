"""Run records in SQLite: every run, whatever its engine, and the status of each step.

A run is recorded before it reaches its engine, so one that never gets there is still kept,
as Failed, with its error and its compiled pipeline.

The schema is versioned (`PRAGMA user_version`); each version adds to the one before
(`_MIGRATIONS`), so a store written by an older cellpipe is upgraded in place, under a write
lock, whichever process opens it first. Writers wait for each other (a 30 s busy timeout).

A store that cannot be used (a damaged file, one written by a newer cellpipe) is a
`StoreError` naming the file and what to do; the file is left as it is, never replaced. A
damaged field of one run is shown as that run's error, never a traceback.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import sqlite3
import time
import uuid
from collections.abc import Iterator
from contextlib import closing, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import StoreError
from .step_cache import make_private

STORE_FILE = "runs.sqlite"
SCHEMA_VERSION = 2
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
CREATE TABLE IF NOT EXISTS tunes (
    tune_id TEXT PRIMARY KEY,
    notebook TEXT NOT NULL,
    engine TEXT NOT NULL,
    status TEXT NOT NULL,
    created REAL NOT NULL,
    finished REAL,
    record TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS tune_trials (
    tune_id TEXT NOT NULL REFERENCES tunes(tune_id) ON DELETE CASCADE,
    trial INTEGER NOT NULL,
    run_id TEXT,
    status TEXT NOT NULL,
    record TEXT NOT NULL,
    PRIMARY KEY (tune_id, trial)
);
CREATE TABLE IF NOT EXISTS services (
    service_id TEXT PRIMARY KEY,
    run_id TEXT NOT NULL,
    model TEXT NOT NULL,
    engine TEXT NOT NULL,
    status TEXT NOT NULL,
    created REAL NOT NULL,
    record TEXT NOT NULL
);
"""
# Version N's statements take a store of version N-1 to N. Columns only ever get added.
_MIGRATIONS: dict[int, list[str]] = {
    2: [
        # what ran: the notebook's content hash, the image, the compiled pipeline (KFP YAML,
        # or the Kubernetes objects of a training job) and the GPU choices
        "ALTER TABLE runs ADD COLUMN notebook_hash TEXT",
        "ALTER TABLE runs ADD COLUMN image TEXT",
        "ALTER TABLE runs ADD COLUMN compiled TEXT",
        "ALTER TABLE runs ADD COLUMN gpus TEXT NOT NULL DEFAULT '{}'",
        # where it runs: ids in the engine (KFP run id, job kind/name/namespace) and links
        "ALTER TABLE runs ADD COLUMN external TEXT NOT NULL DEFAULT '{}'",
        "ALTER TABLE runs ADD COLUMN links TEXT NOT NULL DEFAULT '{}'",
        # who recorded it (host:pid:start), so a run whose process died is not Running forever
        "ALTER TABLE runs ADD COLUMN owner TEXT",
        "ALTER TABLE runs ADD COLUMN updated REAL",
    ],
}


def table_statements(*tables: str) -> list[str]:
    """The schema's CREATE statements of `tables`, for code that keeps tables of its own in
    the store (tunes, services) to run on a store made before them (IF NOT EXISTS: no
    migration, no new column)."""
    return [
        statement
        for statement in _SCHEMA.split(";")
        for table in tables
        if statement.strip().startswith(f"CREATE TABLE IF NOT EXISTS {table} (")
    ]


class TablesBeside:
    """Tables kept beside the runs in the run store's file (tunes, services): made on first
    use, not at start, so a server whose store is damaged still loads and says so."""

    def __init__(self, runs: RunStore, statements: list[str]) -> None:
        self.runs = runs
        self.path = runs.path
        self._statements = statements
        self._tables_made = False

    def _using(self) -> closing[sqlite3.Connection]:
        if isinstance(self.runs, UnavailableStore):
            raise self.runs.error
        try:
            db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            db.execute("PRAGMA foreign_keys = ON")
            if not self._tables_made:
                for statement in self._statements:
                    db.execute(statement)
                self._tables_made = True
        except sqlite3.DatabaseError as exc:
            raise store_error(self.path, exc) from None
        return closing(db)


def cellpipe_home() -> Path:
    """Where runs and the step cache live: $CELLPIPE_HOME, else the XDG data folder."""
    explicit = os.environ.get("CELLPIPE_HOME")
    if explicit:
        return Path(explicit)
    data = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data) / "cellpipe"


def process_owner() -> str:
    """`host:pid:start` of this process; `start` tells a reused pid from the original one."""
    return f"{socket.gethostname()}:{os.getpid()}:{_process_start(os.getpid())}"


def _process_start(pid: int) -> str:
    try:  # field 22 of /proc/PID/stat, after the command name (which may hold spaces)
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return "?"


def owner_alive(owner: str | None) -> bool | None:
    """Whether the process that recorded a run still runs: None when that cannot be told
    (another machine, no owner recorded, no /proc)."""
    if not owner:
        return None
    host, _, rest = owner.partition(":")
    pid_text, _, start = rest.partition(":")
    if host != socket.gethostname() or not pid_text.isdigit() or start == "?":
        return None
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return _process_start(int(pid_text)) == start


def store_error(path: Path, exc: sqlite3.DatabaseError) -> StoreError:
    """The words for a store SQLite cannot use: damaged, or only busy."""
    said = str(exc) or type(exc).__name__
    if isinstance(exc, sqlite3.OperationalError) and "locked" in said:
        return StoreError(f"the run store {path} is busy ({said}); try again in a moment")
    return StoreError(
        f"the run store {path} is damaged ({said}). cellpipe leaves it as it is: move it aside "
        f"(mv {path} {path}.damaged) and a new, empty store is made at the next run, or put "
        "back a copy from a backup; deleting cache/ beside it is always safe"
    )


def open_store(home: Path | None = None) -> RunStore:
    """The run store of `home` (default: cellpipe_home()): HOME/runs.sqlite."""
    return RunStore((home or cellpipe_home()) / STORE_FILE)


def open_store_or_unavailable(home: Path | None = None) -> RunStore:
    """The run store of `home`, or, when it cannot be used, one that answers every use with
    why (for a long-lived process, the server, that must start anyway and say so)."""
    path = (home or cellpipe_home()) / STORE_FILE
    try:
        return RunStore(path)
    except StoreError as exc:
        return UnavailableStore(path, exc)


class ResultError(LookupError):
    """A run, a step of it, or a value it kept that cannot be found; the message says why."""


class RunNotFound(ResultError):
    """No run has that id (or id prefix); the message says so and what to give instead."""


def find_run(store: RunStore, text: str) -> RunRecord:
    """The run `text` names: its id, or the start of exactly one run's id."""
    record = store.get(text)
    if record is not None:
        return record
    runs = store.list()
    matching = [r for r in runs if text and r.run_id.startswith(text)]
    if len(matching) == 1:
        return matching[0]
    if matching:
        ids = ", ".join(r.run_id for r in matching[:5])
        raise RunNotFound(f"{text!r} is the start of several runs' ids ({ids}); say more")
    recent = ", ".join(r.run_id for r in runs[:3])
    hint = f"; the latest runs are {recent}" if recent else "; there are no runs yet"
    raise RunNotFound(f"no run {text!r} in {store.path}{hint} (`cellpipe runs` lists them)")


EXECUTED_FILE = "notebook.ipynb"  # in a run's folder: the notebook with its outputs


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
    notebook_hash: str | None = None  # sha256 of the notebook file as it was submitted
    image: str | None = None
    compiled: str | None = None  # the compiled pipeline (or job objects) as YAML
    gpus: dict[str, Any] = field(default_factory=dict)  # step name -> {count, type, resource}
    external: dict[str, Any] = field(default_factory=dict)  # ids in the engine
    links: dict[str, str] = field(default_factory=dict)  # e.g. {"kfp_ui": URL}
    owner: str | None = None  # host:pid:start of the process that recorded the run
    updated: float | None = None

    @property
    def executed_notebook(self) -> str | None:
        """The run's notebook with its outputs (launcher/executed.py), once it is written."""
        path = Path(self.outputs) / EXECUTED_FILE
        return str(path) if self.outputs and path.is_file() else None

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
            "notebook_hash": self.notebook_hash,
            "image": self.image,
            "gpus": self.gpus,
            "external": self.external,
            "links": self.links,
            "updated": self.updated,
            "executed_notebook": self.executed_notebook,
        }


class _Fields:
    """Reads a row's fields, keeping the names of those that are damaged (not what the
    schema says) instead of failing on them."""

    def __init__(self) -> None:
        self.damaged: list[str] = []

    def text(self, name: str, value: Any) -> str:
        if isinstance(value, str):
            return value
        self.damaged.append(name)
        return "" if value is None else str(value)

    def number(self, name: str, value: Any) -> float | None:
        if value is None or (isinstance(value, (int, float)) and not isinstance(value, bool)):
            return value
        self.damaged.append(name)
        return None

    def mapping(self, name: str, value: Any) -> dict[str, Any]:
        try:
            decoded = json.loads(value)
        except (TypeError, ValueError):
            decoded = None
        if isinstance(decoded, dict):
            return decoded
        self.damaged.append(name)
        return {}


class RunStore:
    def __init__(self, path: Path | None = None) -> None:
        self.path = path or cellpipe_home() / "runs.sqlite"
        make_private(self.path.parent)  # cellpipe's home: this user's only (0700)
        self._migrate()

    def _migrate(self) -> None:
        with self._using(transaction=False) as db:
            found = db.execute("PRAGMA user_version").fetchone()[0]
            if found > SCHEMA_VERSION:
                raise StoreError(
                    f"the run store {self.path} was written by a newer cellpipe (schema "
                    f"{found}; this cellpipe knows up to {SCHEMA_VERSION}): upgrade cellpipe, "
                    "or set CELLPIPE_HOME to another folder to use this version"
                )
            if found == SCHEMA_VERSION:
                self._check_tables(db)
                return
            db.isolation_level = None  # explicit transactions: the schema under one write lock
            db.execute("BEGIN IMMEDIATE")
            try:
                version = db.execute("PRAGMA user_version").fetchone()[0]  # again, locked
                if version < 1:
                    for statement in _SCHEMA.split(";"):
                        if statement.strip():
                            db.execute(statement)
                    version = 1
                for target in range(version + 1, SCHEMA_VERSION + 1):
                    for statement in _MIGRATIONS[target]:
                        db.execute(statement)
                    version = target
                db.execute(f"PRAGMA user_version = {version}")
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    def _check_tables(self, db: sqlite3.Connection) -> None:
        """A store at the current schema has its tables (a damaged one may not)."""
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if not {"runs", "steps"} <= tables:
            raise sqlite3.DatabaseError("its tables are missing")

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=30)
        db.execute("PRAGMA foreign_keys = ON")
        return db

    @contextmanager
    def _using(self, transaction: bool = True) -> Iterator[sqlite3.Connection]:
        """A connection (in a transaction unless told not), its SQLite errors as StoreError."""
        try:
            with closing(self._connect()) as db:
                if transaction:
                    with db:
                        yield db
                else:
                    yield db
        except sqlite3.DatabaseError as exc:
            raise store_error(self.path, exc) from None

    def create(
        self,
        notebook: str,
        pipeline: str,
        engine: str,
        parameters: dict[str, Any],
        steps: list[tuple[str, str]],
        outputs_root: Path,
        run_id: str | None = None,
        *,
        notebook_hash: str | None = None,
        image: str | None = None,
        compiled: str | None = None,
        gpus: dict[str, Any] | None = None,
        external: dict[str, Any] | None = None,
        links: dict[str, str] | None = None,
    ) -> RunRecord:
        """Record a new run as Pending; `run_id` is one chosen earlier (new_run_id) or a new one.

        `notebook_hash` defaults to the sha256 of the notebook file as it is now."""
        run_id = run_id or new_run_id()
        if notebook_hash is None:
            with suppress(OSError):
                notebook_hash = hashlib.sha256(Path(notebook).read_bytes()).hexdigest()
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
            notebook_hash=notebook_hash,
            image=image,
            compiled=compiled,
            gpus=dict(gpus or {}),
            external=dict(external or {}),
            links=dict(links or {}),
            owner=process_owner(),
        )
        record.updated = record.created
        with self._using() as db:
            db.execute(
                "INSERT INTO runs (run_id, notebook, pipeline, engine, status, created, "
                "parameters, outputs, notebook_hash, image, compiled, gpus, external, links, "
                "owner, updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    run_id,
                    notebook,
                    pipeline,
                    engine,
                    "Pending",
                    record.created,
                    json.dumps(parameters),
                    record.outputs,
                    notebook_hash,
                    image,
                    compiled,
                    json.dumps(record.gpus),
                    json.dumps(record.external),
                    json.dumps(record.links),
                    record.owner,
                    record.updated,
                ),
            )
            db.executemany(
                "INSERT INTO steps (run_id, name, task, status) VALUES (?, ?, ?, 'Pending')",
                [(run_id, name, task) for name, task in steps],
            )
        return record

    def update_run(self, record: RunRecord) -> None:
        record.updated = time.time()
        with self._using() as db:
            db.execute(
                "UPDATE runs SET status = ?, finished = ?, metrics = ?, error = ?, image = ?, "
                "compiled = ?, gpus = ?, external = ?, links = ?, updated = ? WHERE run_id = ?",
                (
                    record.status,
                    record.finished,
                    json.dumps(record.metrics),
                    record.error,
                    record.image,
                    record.compiled,
                    json.dumps(record.gpus),
                    json.dumps(record.external),
                    json.dumps(record.links),
                    record.updated,
                    record.run_id,
                ),
            )

    def update_step(self, run_id: str, step: StepRecord) -> None:
        with self._using() as db:
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
        with self._using(transaction=False) as db:
            row = db.execute(
                "SELECT run_id, notebook, pipeline, engine, status, created, outputs, "
                "parameters, metrics, finished, error, notebook_hash, image, compiled, gpus, "
                "external, links, owner, updated FROM runs WHERE run_id = ?",
                (run_id,),
            ).fetchone()
            if row is None:
                return None
            steps = db.execute(
                "SELECT name, task, status, cached, seconds, error, details, outputs "
                "FROM steps WHERE run_id = ? ORDER BY rowid",
                (run_id,),
            ).fetchall()
        fields = _Fields()
        record = RunRecord(
            run_id=str(row[0]),
            notebook=fields.text("notebook", row[1]),
            pipeline=fields.text("pipeline", row[2]),
            engine=fields.text("engine", row[3]),
            status=fields.text("status", row[4]),
            created=fields.number("created", row[5]) or 0.0,
            outputs=fields.text("outputs", row[6]),
            parameters=fields.mapping("parameters", row[7]),
            metrics=fields.mapping("metrics", row[8]),
            finished=fields.number("finished", row[9]),
            error=row[10] if isinstance(row[10], str) else None,
            notebook_hash=row[11] if isinstance(row[11], str) else None,
            image=row[12] if isinstance(row[12], str) else None,
            compiled=row[13] if isinstance(row[13], str) else None,
            gpus=fields.mapping("gpus", row[14]),
            external=fields.mapping("external", row[15]),
            links=fields.mapping("links", row[16]),
            owner=row[17] if isinstance(row[17], str) else None,
            updated=fields.number("updated", row[18]),
        )
        record.steps = {
            str(s[0]): StepRecord(
                str(s[0]),
                str(s[1]),
                fields.text("step status", s[2]),
                bool(s[3]),
                fields.number("step seconds", s[4]),
                s[5],
                s[6],
                s[7],
            )
            for s in steps
        }
        if fields.damaged:
            note = (
                f"the run store's record of this run is damaged ({', '.join(fields.damaged)} "
                f"could not be read, shown empty; the store: {self.path})"
            )
            record.error = f"{record.error}\n{note}" if record.error else note
        return record

    def list(self, notebook: str | None = None) -> list[RunRecord]:
        with self._using(transaction=False) as db:
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
        with self._using() as db:
            db.execute("DELETE FROM steps WHERE run_id = ?", (run_id,))
            db.execute("DELETE FROM runs WHERE run_id = ?", (run_id,))
        outputs = Path(record.outputs)
        if outputs.name == run_id and outputs.is_dir() and not outputs.is_symlink():
            shutil.rmtree(outputs)
        return record


class UnavailableStore(RunStore):
    """Stands for a store that cannot be used: every use raises the StoreError it had."""

    def __init__(self, path: Path, error: StoreError) -> None:
        self.path = path
        self.error = error

    def _connect(self) -> sqlite3.Connection:
        raise self.error
