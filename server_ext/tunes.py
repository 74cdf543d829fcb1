"""The /tunes routes' work, without tornado: a tune started from a JSON body runs in the
background (the local engine's trials on this machine, or a Katib Experiment sent to the
cluster and followed), and is answered at once with its record; watchers hear of every change.

    POST /tunes   {"path", "objective", "direction": "maximize"|"minimize",
                   "search": {NAME: SPACE}, "trials"?, "parallel"?, "algorithm"?, "seed"?,
                   "goal"?, "max_failed"?, "engine"?: "local"|"katib",
                   "image"?, "namespace"?, "pvc"? (katib)}
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cellpipe.launcher.config import CellPipe
from cellpipe.launcher.errors import Conflict, NotFound, UserError
from cellpipe.launcher.notebooks import prepare, read
from cellpipe.launcher.store import RunStore
from cellpipe.launcher.tune_records import TuneRecord, TuneStore, new_tune_id
from cellpipe.launcher.tuning import TunePlan, TuneRequest, plan_tune, tune_here
from cellpipe.launcher.vocabulary import FINISHED, KATIB_ENGINE, LOCAL_ENGINE, TUNING_ENGINES

# field -> the types it takes (None is always "not given")
_FIELDS: dict[str, tuple[type, ...]] = {
    "path": (str,),
    "objective": (str,),
    "direction": (str,),
    "search": (dict,),
    "trials": (int,),
    "parallel": (int,),
    "algorithm": (str,),
    "seed": (int,),
    "goal": (int, float),
    "max_failed": (int,),
    "engine": (str,),
    "image": (str,),
    "namespace": (str,),
    "pvc": (str,),
}


def check_tune_body(body: dict[str, Any]) -> None:
    """Each field of the type it takes (booleans are no numbers); a UserError (400) naming
    the first that is not, and the fields a tune needs."""
    for name, kinds in _FIELDS.items():
        value = body.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, kinds):
            wanted = " or ".join(k.__name__.replace("dict", "object") for k in kinds)
            raise UserError(f"'{name}' must be {wanted}", reason="bad_request")
    for name in ("objective", "direction", "search"):
        if body.get(name) in (None, "", {}):
            raise UserError(f"a tune needs '{name}'", reason="bad_request")
    search = body["search"]
    if not all(isinstance(v, str) for v in search.values()):
        raise UserError("'search' maps each parameter to a SPACE string", reason="bad_request")


def tune_request(body: dict[str, Any], tune_id: str) -> TuneRequest:
    return TuneRequest(
        objective=body["objective"],
        direction=body["direction"],
        search=[f"{name}={space}" for name, space in body["search"].items()],
        trials=body.get("trials"),
        parallel=body.get("parallel"),
        algorithm=body.get("algorithm") or "random",
        seed=body.get("seed"),
        goal=body.get("goal"),
        max_failed=body.get("max_failed", 3),
        engine=body.get("engine") or LOCAL_ENGINE,
        tune_id=tune_id,
    )


class TuneManager:
    """Tunes of notebooks under the server's root: started, followed, cancelled, deleted."""

    def __init__(
        self,
        config: CellPipe,
        root: Path,
        home: Path,
        store: RunStore,
        log: logging.Logger | None = None,
    ) -> None:
        self.config, self.root, self.home = config, root, home
        self.log = log or logging.getLogger(__name__)
        self.store = TuneStore(store)
        self.lock = threading.Lock()
        self.active: dict[str, TunePlan] = {}
        self.watchers: dict[str, list[Callable[[], object]]] = {}

    # -- starting ---------------------------------------------------------------------------
    def start(self, notebook: Path, api_path: str, body: dict[str, Any]) -> dict[str, Any]:
        """Plan the tune (400 for what the user must change) and start it in the background."""
        engine = body.get("engine") or LOCAL_ENGINE
        if engine not in TUNING_ENGINES:
            raise UserError(
                f"no tuning engine {engine!r}; they are {', '.join(TUNING_ENGINES)}",
                reason="unknown_engine",
            )
        prepared = prepare(
            read(notebook, api_path),
            self.config,
            path=notebook,
            name=api_path,
            local_only=engine != KATIB_ENGINE,
        )
        plan = plan_tune(prepared, tune_request(body, new_tune_id()))
        tune = plan.new_record()
        if engine == KATIB_ENGINE:
            return self.json(self._submit_katib(plan, tune, body))
        self.store.save(tune)
        with self.lock:
            self.active[tune.tune_id] = plan
        threading.Thread(
            target=self._run_here, args=(plan,), name=f"cellpipe-tune-{tune.tune_id}", daemon=True
        ).start()
        return self.json(tune)

    def _run_here(self, plan: TunePlan) -> None:
        tune_id = plan.request.tune_id or ""
        try:
            tune_here(plan, self.config, home=self.home, listener=lambda *_: self._changed(tune_id))
        except Exception:  # the record says Failed; the server goes on
            self.log.exception("cellpipe: tune %s failed", tune_id)
            stored = self.store.get(tune_id)
            if stored is not None and stored.status not in FINISHED:
                stored.status, stored.error = "Failed", "the tune stopped on an error (server log)"
                self.store.save(stored)
        finally:
            with self.lock:
                self.active.pop(tune_id, None)
            self._changed(tune_id)

    def _submit_katib(self, plan: TunePlan, tune: TuneRecord, body: dict[str, Any]) -> TuneRecord:
        from cellpipe.launcher.k8s import KubeSettings
        from cellpipe.launcher.katib import namespace_of, submit_katib
        from cellpipe.launcher.katib_objects import KatibOptions, plan_katib
        from cellpipe.launcher.registry import checked_reference

        if not body.get("image"):
            raise UserError(
                "a Katib tune from here needs 'image' (built with POST /builds, or `cellpipe "
                "build`)",
                reason="bad_request",
            )
        kube = KubeSettings(namespace=body.get("namespace") or self.config.namespace)
        options = KatibOptions(
            namespace=namespace_of(kube),
            image=checked_reference(body["image"], "'image'"),
            pvc=body.get("pvc"),
            gpu_resource=self.config.gpu_resource,
            gpu_label=self.config.gpu_label,
            gpu_tolerations=self.config.gpu_tolerations,
        )
        return submit_katib(tune, plan_katib(plan, tune.tune_id, options), self.store, kube)

    # -- reading ----------------------------------------------------------------------------
    def json(self, tune: TuneRecord) -> dict[str, Any]:
        """The tune as `cellpipe tune --format json` shows it, its notebook as an API path."""
        data = tune.to_json()
        notebook = Path(tune.notebook)
        data["notebook"] = (
            notebook.relative_to(self.root).as_posix()
            if notebook.is_relative_to(self.root)
            else None
        )
        return data

    def record(self, tune_id: str) -> TuneRecord:
        """The tune, if its notebook is under the root (else 404, as if there were none); a
        Katib tune as the cluster has it now, when it can be asked."""
        tune = self.store.get(tune_id)
        if tune is None or not Path(os.path.normpath(tune.notebook)).is_relative_to(self.root):
            raise NotFound(f"no tune {tune_id}")
        if tune.engine == KATIB_ENGINE and tune.status not in FINISHED:
            from cellpipe.launcher.katib import refresh_katib

            try:
                tune = refresh_katib(tune, self.store)
            except Exception as exc:  # the last known state stands
                self.log.warning("cellpipe: refreshing tune %s failed: %s", tune_id, exc)
        return tune

    def list(self, notebook: Path | None) -> dict[str, Any]:
        tunes = self.store.list(str(notebook) if notebook else None)
        under = [t for t in tunes if Path(os.path.normpath(t.notebook)).is_relative_to(self.root)]
        return {"tunes": [self.json(t) for t in under]}

    def is_active(self, tune_id: str) -> bool:
        with self.lock:
            return tune_id in self.active

    # -- changing ---------------------------------------------------------------------------
    def cancel(self, tune_id: str) -> dict[str, Any]:
        """Stop after the running trials (a Katib tune: its Experiment is deleted)."""
        tune = self.record(tune_id)
        with self.lock:
            plan = self.active.get(tune_id)
        if plan is not None:
            plan.request.cancel.set()
        elif tune.engine == KATIB_ENGINE and tune.status not in FINISHED:
            from cellpipe.launcher.katib import cancel_katib

            tune = cancel_katib(tune, self.store)
        elif tune.status in FINISHED:
            raise Conflict(f"tune {tune_id} has already ended ({tune.status})")
        self._changed(tune_id)
        return self.json(self.store.get(tune_id) or tune)

    def delete(self, tune_id: str) -> None:
        """Forget the tune and its trials' runs (a Katib tune's objects too)."""
        tune = self.record(tune_id)
        if self.is_active(tune_id):
            raise Conflict(f"tune {tune_id} is still running: cancel it first")
        if tune.engine == KATIB_ENGINE:
            from cellpipe.launcher.katib import delete_katib

            delete_katib(tune)
        self.store.delete(tune_id)
        self._changed(tune_id)

    # -- watching ---------------------------------------------------------------------------
    def watch(self, tune_id: str, callback: Callable[[], object]) -> Callable[[], None]:
        """Call `callback` (from any thread) on every change of the tune; returns unwatch."""
        with self.lock:
            self.watchers.setdefault(tune_id, []).append(callback)

        def unwatch() -> None:
            with self.lock:
                listeners = self.watchers.get(tune_id, [])
                if callback in listeners:
                    listeners.remove(callback)

        return unwatch

    def _changed(self, tune_id: str) -> None:
        with self.lock:
            listeners = list(self.watchers.get(tune_id, []))
        for listener in listeners:
            listener()
