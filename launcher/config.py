"""`c.CellPipe.*`: the configuration every front door reads (server extension; CLI later).

Set it in any Jupyter config file, e.g. `jupyter_server_config.py`:

    c.CellPipe.registry = "registry.example.com/team"
    c.CellPipe.gpu_types = [
        {"name": "NVIDIA-A100-SXM4-80GB", "display_name": "A100 80 GB"},
        {"name": "1g.10gb", "display_name": "A100 slice", "resource": "nvidia.com/mig-1g.10gb"},
    ]

Precedence, everywhere: an explicit option (CLI flag, UI dialog) > the notebook's
`metadata.cellpipe` > this configuration > defaults. Traits tagged `secret=True` are never
shown to a client (the server's GET /config leaves them out).

Imports only traitlets: `import cellpipe` runs in every step image, and this module may be
imported by the CLI at start.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from traitlets import Dict, Int, List, TraitError, Unicode, validate
from traitlets.config import Configurable
from traitlets.utils.importstring import import_item

if TYPE_CHECKING:
    from cellpipe.converter import CompileOptions

ENGINES = {
    "local": "cellpipe.launcher.local_engine.LocalEngine",
    "kfp-local": "cellpipe.launcher.kfp_local.KfpLocalEngine",
}
# The cluster engines (`cellpipe submit --engine`), known by name: each is submitted through
# its own launcher class, not through the `engines` interface (see CellPipe.offered_engines).
CLUSTER_ENGINES = {
    "kfp": "cellpipe.launcher.kfp_engine.KfpEngine",
    **{
        name: "cellpipe.launcher.training.TrainingEngine"
        for name in ("pytorchjob", "tfjob", "xgboostjob", "mpijob", "trainjob")
    },
}
BUILDERS = ("engine", "append", "kaniko")
GPU_TYPE_KEYS = {"name": str, "display_name": str, "resource": str}


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
        default_value=dict(ENGINES),
        help="""Engine name -> the class that runs it, as an import string. A class takes
        `store` and `home` keyword arguments and has `run(request, listener) -> RunRecord`
        (cellpipe.launcher.LocalEngine is the model); set `cancellable = True` on it if it
        honours `RunRequest.cancel`. Replace an entry to swap an engine (tests swap in
        doubles this way). The cluster engines (`kfp`, `pytorchjob`, `tfjob`, `xgboostjob`,
        `mpijob`, `trainjob`) are not listed here: the server offers them besides these when
        the cluster is configured (kfp: kfp_host, $KF_PIPELINES_ENDPOINT or Kubernetes;
        training engines: a kubeconfig, or running in a pod).""",
    ).tag(config=True)

    builder = Unicode(
        "append",
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

    @validate("default_engine")
    def _check_default_engine(self, proposal: Any) -> str:
        value: str = proposal["value"]
        if value not in self.engines:
            raise TraitError(
                f"CellPipe.default_engine {value!r} is not one of the engines: "
                f"{', '.join(self.engines)}"
            )
        return value

    @validate("builder")
    def _check_builder(self, proposal: Any) -> str:
        value: str = proposal["value"]
        if value not in BUILDERS:
            raise TraitError(f"CellPipe.builder {value!r} is not one of {', '.join(BUILDERS)}")
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
        return import_item(self.engines[name])

    def cluster_engines(self) -> dict[str, str]:
        """The cluster engines this configuration can submit to, name -> launcher class:
        `kfp` when a Kubeflow Pipelines address is configured (kfp_host,
        $KF_PIPELINES_ENDPOINT) or Kubernetes is (then through the API server's proxy, or
        in-cluster); the training engines when Kubernetes is. Configured, not checked: an
        unreachable cluster is said so when a run is submitted."""
        kubernetes = kubernetes_configured()
        offered = {}
        if self.kfp_host or os.environ.get("KF_PIPELINES_ENDPOINT") or kubernetes:
            offered["kfp"] = CLUSTER_ENGINES["kfp"]
        if kubernetes:
            offered.update({k: v for k, v in CLUSTER_ENGINES.items() if k != "kfp"})
        return offered

    def offered_engines(self) -> dict[str, str]:
        """What a client may choose: `engines` (runs on this machine), then the cluster
        engines that are configured (cluster_engines)."""
        offered = dict(self.engines)
        for name, cls in self.cluster_engines().items():
            offered.setdefault(name, cls)
        return offered

    def public(self) -> dict[str, Any]:
        """Every setting except the secrets, as JSON."""
        return {
            name: getattr(self, name)
            for name, trait in sorted(self.traits(config=True).items())
            if not trait.metadata.get("secret")
        }

    def compile_options(
        self,
        notebook_metadata: Mapping[str, Any],
        *,
        registry: str | None = None,
        base_image: str | None = None,
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
            gpu_resource=self.gpu_resource,
            gpu_label=self.gpu_label,
            gpu_tolerations=self.gpu_tolerations,
            local_only=local_only,
        )
