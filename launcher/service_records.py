"""Service records: the models being served (`cellpipe serve`), kept in the run store's file
(the `services` table of launcher/store.py), so `cellpipe runs`, `status` and `delete` and the
server's /services know them. A store made before services existed gets the table when a
service first opens it (CREATE TABLE IF NOT EXISTS, the statement of store.py's schema).
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

from .errors import NotFound
from .store import RunStore, TablesBeside, store_error, table_statements

_SERVICE_TABLE = table_statements("services")
# A service's status: starting, answering, stopped (the server gone), or failed to start.
PENDING, READY, STOPPED, FAILED = "Pending", "Ready", "Stopped", "Failed"


def new_service_id() -> str:
    return f"svc-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"


@dataclass
class ServiceRecord:
    """A model served here (`local`: KServe's model server, a process of this machine) or on
    the cluster (`kserve`: an InferenceService)."""

    service_id: str
    run_id: str
    model: str
    engine: str  # "local" | "kserve"
    name: str  # the model's name in its URLs (V1 /v1/models/NAME:predict)
    url: str = ""
    status: str = PENDING
    protocols: list[str] = field(default_factory=lambda: ["v1", "v2"])
    created: float = field(default_factory=time.time)
    pid: int | None = None  # local: the model server's process
    namespace: str | None = None  # kserve: where the InferenceService is
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class ServiceStore(TablesBeside):
    """Services in the run store's SQLite file, beside the runs whose models they serve."""

    def __init__(self, runs: RunStore) -> None:
        super().__init__(runs, _SERVICE_TABLE)

    def save(self, record: ServiceRecord) -> None:
        try:
            with self._using() as db:
                db.execute(
                    "INSERT OR REPLACE INTO services "
                    "(service_id, run_id, model, engine, status, created, record) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        record.service_id,
                        record.run_id,
                        record.model,
                        record.engine,
                        record.status,
                        record.created,
                        json.dumps(record.to_json()),
                    ),
                )
        except sqlite3.DatabaseError as exc:
            raise store_error(self.path, exc) from None

    def list(self, run_id: str | None = None) -> list[ServiceRecord]:
        query = "SELECT record FROM services"
        args: tuple[str, ...] = ()
        if run_id is not None:
            query, args = query + " WHERE run_id = ?", (run_id,)
        try:
            with self._using() as db:
                rows = db.execute(query + " ORDER BY created DESC", args).fetchall()
        except sqlite3.DatabaseError as exc:
            raise store_error(self.path, exc) from None
        return [_read(row[0]) for row in rows]

    def get(self, service_id: str) -> ServiceRecord:
        try:
            with self._using() as db:
                row = db.execute(
                    "SELECT record FROM services WHERE service_id = ?", (service_id,)
                ).fetchone()
        except sqlite3.DatabaseError as exc:
            raise store_error(self.path, exc) from None
        if row is None:
            raise NotFound(f"no service {service_id!r}; `cellpipe runs` lists the services")
        return _read(row[0])

    def delete(self, service_id: str) -> None:
        try:
            with self._using() as db:
                db.execute("DELETE FROM services WHERE service_id = ?", (service_id,))
        except sqlite3.DatabaseError as exc:
            raise store_error(self.path, exc) from None


def _read(text: str) -> ServiceRecord:
    data = json.loads(text)
    known = {k: v for k, v in data.items() if k in ServiceRecord.__dataclass_fields__}
    return ServiceRecord(**known)
