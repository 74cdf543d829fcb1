"""`c.CellPipe.*`: the configuration every front door reads (CLI, server, magics, widgets),
loaded in one place (`load_config`).

Set it in any Jupyter config file, e.g. `jupyter_server_config.py`:

    c.CellPipe.registry = "registry.example.com/team"
    c.CellPipe.gpu_types = [
        {"name": "NVIDIA-A100-SXM4-80GB", "display_name": "A100 80 GB"},
        {"name": "1g.10gb", "display_name": "A100 slice", "resource": "nvidia.com/mig-1g.10gb"},
    ]

Precedence, everywhere: an explicit option (CLI flag, UI dialog) > the notebook's
`metadata.cellpipe` > this configuration > defaults. Traits tagged `secret=True` are never
shown to a client (the server's GET /config leaves them out).

Imports only traitlets and cellpipe's vocabulary: the CLI imports it at start.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from traitlets import Dict, Int, List, TraitError, Unicode, default, validate
from traitlets.config import Configurable

from .errors import UserError
from .plugins import builder_classes, engine_classes, load_class
from .vocabulary import (
    CLUSTER_ENGINES,
    DEFAULT_BUILDER,
    FINISHED,
    KANIKO_BUILDER,
    KFP_ENGINE,
    LOCAL_ENGINES,
    STATUSES,
    TRAINING_ENGINES,
)

if TYPE_CHECKING:
    from cellpipe.converter import CompileOptions

CONFIG_FILES = ("jupyter_server_config", "jupyter_cellpipe_config")
GPU_TYPE_KEYS = {"name": str, "display_name": str, "resource": str}


def __getattr__(name: str) -> dict[str, str]:
    """`ENGINES` and `BUILDER_CLASSES`: every engine and builder known by name (cellpipe's own
    and registered entry points), read when first asked for, not when this module is imported
    (reading every installed package's entry points is time `cellpipe compile` does not need)."""
    if name == "ENGINES":
        return engine_classes()
    if name == "BUILDER_CLASSES":
        return builder_classes()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def check_gpu_types(entries: Any, where: str) -> list[dict[str, str]]:
    """A `gpu_types` list checked (the one shape of c.CellPipe.gpu_types and the spawners'
    gpu_types); TraitError naming `where` and the entry otherwise."""
    checked = []
    for number, entry in enumerate(entries, start=1):
        if not isinstance(entry, dict):
            raise TraitError(f"{where} entry {number} is not a dict")
        unknown = sorted(set(entry) - set(GPU_TYPE_KEYS))
        if unknown:
            raise TraitError(
                f"{where} entry {number}: unknown keys {', '.join(unknown)}; "
                f"the keys are {', '.join(GPU_TYPE_KEYS)}"
            )
        if not isinstance(entry.get("name"), str) or not entry["name"]:
            raise TraitError(f"{where} entry {number} needs a name")
        for key, value in entry.items():
            if not isinstance(value, str):
                raise TraitError(f"{where} entry {number}: {key} is not text")
        checked.append(dict(entry))
    return checked


def kubernetes_configured() -> bool:
    """Whether a Kubernetes configuration is found as kubectl finds it ($KUBECONFIG, else
    ~/.kube/config), or this runs in a pod; nothing is read or asked of the cluster."""
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        return True
    named = os.environ.get("KUBECONFIG", "").split(os.pathsep)[0]
    path = Path(named) if named else Path.home() / ".kube" / "config"
    return path.is_file()


class CellPipe(Configurable):
    """cellpipe's settings: engines, registry, Kubeflow Pipelines, GPUs."""

    default_engine = Unicode(
        "local",
        help="""The engine a run uses when the client names none: a key of `engines`
        (`local`: cellpipe's fast executor on this machine; `kfp-local`: the kfp SDK's
        kfp.local, the reference).""",
    ).tag(config=True)

    engines = Dict(
        key_trait=Unicode(),
        value_trait=Unicode(),
        help="""Engine name -> the class that runs it, as an import string: cellpipe's own
        (`local`, `kfp-local`; the cluster engines `kfp`, `pytorchjob`, `tfjob`,
        `xgboostjob`, `mpijob`, `trainjob`) and those other packages register under the
        `cellpipe.engines` entry point group. An engine that runs here takes `store` and
        `home` keyword arguments and has `run(request, listener) -> RunRecord`
        (cellpipe.launcher.LocalEngine is the model; `cancellable = True` if it honours
        `RunRequest.cancel`); a cluster engine says `location = "cluster"` and follows
        cellpipe.launcher.cluster.ClusterEngine. Replace an entry to swap an engine (tests
        swap in doubles this way). Cluster engines are offered when the cluster is
        configured (kfp: kfp_host, $KF_PIPELINES_ENDPOINT or Kubernetes; training engines:
        a kubeconfig, or running in a pod).""",
    ).tag(config=True)

    builders = Dict(
        key_trait=Unicode(),
        value_trait=Unicode(),
        help="""Builder name -> its class, as an import string: cellpipe's own (`append`,
        `engine`, `kaniko`) and those registered under the `cellpipe.builders` entry point
        group (cellpipe.launcher.build.Builder is the protocol).""",
    ).tag(config=True)

    builder = Unicode(
        DEFAULT_BUILDER,
        help="""How images are built: `append` (layers appended in an OCI registry, no daemon;
        the default), `engine` (a Docker Engine API: Docker or podman) or `kaniko` (in the
        cluster).""",
    ).tag(config=True)

    registry = Unicode(
        None,
        allow_none=True,
        help="""Registry the pipeline images are pushed to (`registry.example.com/team`);
        a notebook's metadata.cellpipe.registry wins over it.""",
    ).tag(config=True)

    base_image = Unicode(
        None,
        allow_none=True,
        help="""Base image of steps without an image: tag; a notebook's
        metadata.cellpipe.base_image wins over it. Default: python:X.Y-slim for the Python
        that compiles.""",
    ).tag(config=True)

    kfp_host = Unicode(
        None,
        allow_none=True,
        help="Kubeflow Pipelines API endpoint (`https://kubeflow.example.com/pipeline`).",
    ).tag(config=True)

    kfp_token = Unicode(
        None,
        allow_none=True,
        help="""Bearer token for the Kubeflow Pipelines API. A secret: never returned by
        the server's /config.""",
    ).tag(config=True, secret=True)

    namespace = Unicode(
        None,
        allow_none=True,
        help="Kubernetes namespace (Kubeflow profile) runs are submitted to.",
    ).tag(config=True)

    gpu_resource = Unicode(
        "nvidia.com/gpu",
        help="Kubernetes resource name of one GPU.",
    ).tag(config=True)

    gpu_label = Unicode(
        "nvidia.com/gpu.product",
        help="Node label whose value is the GPU type (gpu:N:TYPE selects nodes by it).",
    ).tag(config=True)

    gpu_types = List(
        Dict(),
        help="""The GPU types people may choose, one dict each:
        {"name": the value of `gpu_label` on nodes with this GPU, which is also what a
        gpu:N:NAME tag says (required); "display_name": words for people (default: name);
        "resource": the Kubernetes resource name, for types counted under another resource,
        such as MIG slices (default: gpu_resource)}. The same shape for the engines, the
        server and the spawner.""",
    ).tag(config=True)

    gpu_tolerations = List(
        Dict(),
        default_value=None,
        allow_none=True,
        help="""Tolerations (Kubernetes toleration dicts: key, operator, value, effect) of
        steps that ask for GPUs. None: tolerate the taint named for gpu_resource.""",
    ).tag(config=True)

    concurrent_runs = Int(
        4,
        help="""How many runs the server runs at the same time; more wait, Pending. Each
        `local` run already runs independent steps side by side. kfp-local runs go one at
        a time whatever this says (kfp.local keeps its settings process-wide).""",
    ).tag(config=True)

    # Every engine and builder known by name, read when first asked for (ENGINES above).
    @default("engines")
    def _default_engines(self) -> dict[str, str]:
        return dict(engine_classes())

    @default("builders")
    def _default_builders(self) -> dict[str, str]:
        return dict(builder_classes())

    @validate("default_engine")
    def _check_default_engine(self, proposal: Any) -> str:
        value: str = proposal["value"]
        here = self.engines_here()
        if value not in here:
            raise TraitError(
                f"CellPipe.default_engine {value!r} is not one of the engines: {', '.join(here)}"
            )
        return value

    @validate("builder")
    def _check_builder(self, proposal: Any) -> str:
        value: str = proposal["value"]
        if value not in self.builders:
            raise TraitError(f"CellPipe.builder {value!r} is not one of {', '.join(self.builders)}")
        return value

    @validate("gpu_types")
    def _check_gpu_types(self, proposal: Any) -> list[dict[str, str]]:
        return check_gpu_types(proposal["value"], "CellPipe.gpu_types")

    @validate("concurrent_runs")
    def _check_concurrent_runs(self, proposal: Any) -> int:
        value: int = proposal["value"]
        if value < 1:
            raise TraitError("CellPipe.concurrent_runs must be at least 1")
        return value

    def gpu_type_list(self) -> list[dict[str, str]]:
        """`gpu_types` with their defaults filled in."""
        return [
            {
                "name": entry["name"],
                "display_name": entry.get("display_name") or entry["name"],
                "resource": entry.get("resource") or self.gpu_resource,
            }
            for entry in self.gpu_types
        ]

    def engine_class(self, name: str) -> Any:
        """The engine class configured for `name` (KeyError if there is none)."""
        return load_class(self.engines[name])

    def engine_location(self, name: str) -> str:
        """`here` or `cluster`: cellpipe's own engines by the vocabulary (nothing imported),
        others by their class's `location` (default `here`)."""
        if name in CLUSTER_ENGINES and self.engines.get(name) == engine_classes().get(name):
            return "cluster"
        if name in LOCAL_ENGINES or name not in self.engines:
            return "here"
        return str(getattr(self.engine_class(name), "location", "here"))

    def engines_here(self) -> dict[str, str]:
        """The engines that run on this machine, name -> class."""
        return {n: c for n, c in self.engines.items() if self.engine_location(n) == "here"}

    def cluster_engines(self) -> dict[str, str]:
        """The cluster engines this configuration can submit to, name -> class: `kfp` when
        a Kubeflow Pipelines address is configured (kfp_host, $KF_PIPELINES_ENDPOINT) or
        Kubernetes is (then through the API server's proxy, or in-cluster); the others when
        Kubernetes is. Configured, not checked: an unreachable cluster is said so when a
        run is submitted."""
        kubernetes = kubernetes_configured()
        kfp = bool(self.kfp_host or os.environ.get("KF_PIPELINES_ENDPOINT")) or kubernetes
        return {
            name: cls
            for name, cls in self.engines.items()
            if self.engine_location(name) == "cluster"
            and (kfp if name == KFP_ENGINE else kubernetes)
        }

    def offered_engines(self) -> dict[str, str]:
        """What a client may choose: the engines here, then the configured cluster ones."""
        return {**self.engines_here(), **self.cluster_engines()}

    def builder_for(self, explicit: str | None) -> str:
        """The builder: the explicit choice, else c.CellPipe.builder; one that builds here
        unless the choice is explicit (kaniko builds in the cluster from a Job)."""
        name = explicit or self.builder
        if name not in self.builders:
            raise UserError(
                f"unknown builder {name!r}: use one of {', '.join(self.builders)}",
                reason="unknown_builder",
            )
        return name

    def vocabulary(self) -> dict[str, Any]:
        """The names a client offers and understands (GET /config's `vocabulary`)."""
        cluster = [n for n in self.engines if self.engine_location(n) == "cluster"]
        return {
            "statuses": list(STATUSES),
            "finished": [s for s in STATUSES if s in FINISHED],
            "local_engines": list(self.engines_here()),
            "cluster_engines": cluster,
            "training_engines": [n for n in cluster if self.trains_one_step(n)],
            "builders": list(self.builders),
            "builders_here": [b for b in self.builders if b != KANIKO_BUILDER],
            "default_builder": self.builder,
        }

    def trains_one_step(self, name: str) -> bool:
        """Whether a cluster engine runs one step as a distributed training job (it takes
        workers); cellpipe's own by the vocabulary, others by `trains_one_step` on the class."""
        if name in TRAINING_ENGINES and self.engines.get(name) == engine_classes().get(name):
            return True
        if name in CLUSTER_ENGINES or self.engine_location(name) != "cluster":
            return False
        return bool(getattr(self.engine_class(name), "trains_one_step", False))

    def public(self) -> dict[str, Any]:
        """Every setting except the secrets, as JSON; an address shown without the
        `user:password@` it may carry."""
        return {
            name: without_credentials(getattr(self, name))
            for name, trait in sorted(self.traits(config=True).items())
            if not trait.metadata.get("secret")
        }

    def compile_options(
        self,
        notebook_metadata: Mapping[str, Any],
        *,
        registry: str | None = None,
        base_image: str | None = None,
        gpu_resource: str | None = None,
        gpu_label: str | None = None,
        local_only: bool = False,
    ) -> CompileOptions:
        """CompileOptions in the one precedence: explicit > metadata.cellpipe > this > defaults.

        CompileOptions' registry and base image are the caller's explicit choices and win over
        the notebook's; a configured value is passed on only where the notebook names none.
        """
        from cellpipe.converter import CompileOptions
        from cellpipe.converter.settings import read_settings

        settings = read_settings(notebook_metadata, "notebook").pipeline
        return CompileOptions(
            registry=registry or (None if settings.registry else self.registry),
            base_image=base_image or (None if settings.base_image else self.base_image),
            gpu_resource=gpu_resource or self.gpu_resource,
            gpu_label=gpu_label or self.gpu_label,
            gpu_tolerations=self.gpu_tolerations,
            local_only=local_only,
        )


def load_config() -> CellPipe:
    """c.CellPipe from the Jupyter config files (jupyter_server_config.{json,py} and
    jupyter_cellpipe_config.{json,py} in every Jupyter config folder, the user's last): what
    the CLI, the magics and the widgets read; the server gets the same from its own loader."""
    from jupyter_core.paths import jupyter_config_path
    from traitlets.config import Config
    from traitlets.config.loader import JSONFileConfigLoader, PyFileConfigLoader

    merged = Config()
    for folder in reversed(jupyter_config_path()):
        for base in CONFIG_FILES:
            for loader, suffix in ((JSONFileConfigLoader, ".json"), (PyFileConfigLoader, ".py")):
                path = Path(folder) / f"{base}{suffix}"
                if not path.is_file():
                    continue
                try:
                    merged.merge(loader(path.name, str(path.parent)).load_config())
                except Exception as exc:  # a broken config file is the user's to fix
                    raise UserError(f"cannot read the Jupyter config file {path}: {exc}") from None
    try:
        return CellPipe(config=merged)
    except TraitError as exc:
        raise UserError(f"Jupyter configuration: {exc}") from None


def without_credentials(value: Any) -> Any:
    """A URL without the `user:password@` in its authority (`https://u:p@host/x` is
    `https://host/x`); any other value as it is."""
    if not isinstance(value, str) or "@" not in value or "://" not in value:
        return value
    from urllib.parse import urlsplit, urlunsplit

    try:
        parts = urlsplit(value)
    except ValueError:  # not a URL after all: shown as it is
        return value
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))
