"""The objects of a tune on the cluster, built by pure functions: a Katib Experiment
(kubeflow.org/v1beta1, the official Katib API models of `kubeflow-katib-api`), and the
training engines' claim and prepare Job (launcher/training_objects.py) for the steps that use
no tuned parameter. Nothing here reaches a cluster.

The steps that use no tuned parameter run once, in the prepare Job, and leave their values on
the claim (DIR/values/TASK). Each trial is a batch Job (Katib's trial template) whose pod waits
for the prepare Job (the training engines' init container), links those values into a folder
of its own (DIR/trials/TRIAL), runs the tuned steps there with the trial's parameters
(CELLPIPE_PARAMETERS, Katib's `${trialParameters.NAME}` put in as JSON) and prints each metric
as `cellpipe-metric NAME=VALUE` for Katib's StdOut metrics collector.
"""

from __future__ import annotations

import importlib
import json
import shlex
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from cellpipe.converter.model import Step

from .errors import UserError
from .k8s import STEP_LABEL, to_dict
from .training_objects import (
    DATA_MOUNT,
    ENTRY,
    Names,
    PodSettings,
    container,
    names_for,
    pod_template,
    prepare_job,
    run_labels,
    storage_claim,
)
from .tune_spaces import KATIB_ALGORITHMS

if TYPE_CHECKING:
    from .tune_plan import TunePlan

KATIB_GROUP, KATIB_VERSION = "kubeflow.org", "v1beta1"
EXPERIMENTS, TRIALS = "experiments", "trials"
EXPERIMENT_LABEL = "katib.kubeflow.org/experiment"  # Katib labels each Trial with it
TRIAL_CONTAINER = "trial"
METRIC_PREFIX = "cellpipe-metric"
# Katib's StdOut collector: two top groups, the metric's name and its value
METRICS_FORMAT = rf"{METRIC_PREFIX} ([\w|-]+)=([+-]?\d*(\.\d+)?([Ee][+-]?\d+)?)"
JOB_SUCCEEDED = 'status.conditions.#(type=="Complete")#|#(status=="True")#'
JOB_FAILED = 'status.conditions.#(type=="Failed")#|#(status=="True")#'
TRIAL_NAME = "trialName"  # the trial parameter that Katib sets to the Trial's own name


@dataclass
class KatibOptions:
    """Where and how the Experiment runs (the configured GPU settings included)."""

    namespace: str
    image: str
    pvc: str | None = None  # an existing claim; None: one of the tune's own
    storage_size: str = "10Gi"
    storage_class: str | None = None
    gpu_resource: str = "nvidia.com/gpu"
    gpu_label: str = "nvidia.com/gpu.product"
    gpu_tolerations: list[dict[str, str]] | None = None
    service_account: str | None = None
    image_pull_secrets: tuple[str, ...] = ()


@dataclass
class KatibPlan:
    """Every object a Katib tune creates, in order, as typed models, and their names."""

    names: Names
    namespace: str
    claim: str
    claim_created: bool
    objects: list[Any]
    gpus_per_trial: int

    @property
    def experiment(self) -> Any:
        return self.objects[-1]

    def dicts(self) -> list[dict[str, Any]]:
        return [to_dict(o) for o in self.objects]


def plan_katib(plan: TunePlan, tune_id: str, options: KatibOptions) -> KatibPlan:
    """The claim, the prepare Job (when steps are shared) and the Experiment; nothing sent."""
    _check_katib_values(plan)
    pipeline = plan.prepared.pipeline
    names = names_for(pipeline.settings.name, tune_id, "katib")
    claim = options.pvc or names.pvc
    labels = run_labels(pipeline.settings.name, tune_id)
    base = PodSettings(
        image=options.image,
        claim=claim,
        run_dir=f"{DATA_MOUNT}/runs/{tune_id}",
        parameters={n: p.default for n, p in pipeline.parameters.items()},
        labels=labels,
        gpu_resource=options.gpu_resource,
        gpu_label=options.gpu_label,
        gpu_tolerations=options.gpu_tolerations,
        service_account=options.service_account,
        image_pull_secrets=list(options.image_pull_secrets),
    )
    objects: list[Any] = []
    if options.pvc is None:
        objects.append(
            storage_claim(
                names.pvc, options.namespace, labels, options.storage_size, options.storage_class
            )
        )
    if plan.shared_steps:
        settings = _for_steps(base, plan.shared_steps, "prepare")
        objects.append(
            prepare_job(
                names.prepare, options.namespace, settings, [s.task for s in plan.shared_steps]
            )
        )
    trial = _for_steps(base, plan.tuned_steps, "trial")
    objects.append(experiment(plan, names.job, options.namespace, trial))
    return KatibPlan(names, options.namespace, claim, options.pvc is None, objects, trial.gpus)


def _for_steps(base: PodSettings, steps: list[Step], role: str) -> PodSettings:
    """A pod that runs `steps` one after another asks for the most any of them asks for."""
    gpus = [s.resources.gpu for s in steps if s.resources.gpu]
    most = max(gpus, key=lambda g: g.count) if gpus else None
    return replace(
        base,
        labels={**base.labels, STEP_LABEL: role},
        gpus=most.count if most else 0,
        gpu_type=most.type if most else None,
        gpu_resource=(most.resource if most and most.resource else base.gpu_resource),
        cpu=(
            _largest(s.resources.cpu_request for s in steps),
            _largest(s.resources.cpu_limit for s in steps),
        ),
        memory=(
            _largest(s.resources.memory_request for s in steps),
            _largest(s.resources.memory_limit for s in steps),
        ),
        env={k: v for s in steps for k, v in s.options.env.items()},
    )


def _largest(values: Any) -> str | None:
    from kubernetes.utils import parse_quantity

    present = [v for v in values if v]
    return max(present, key=parse_quantity) if present else None


def _check_katib_values(plan: TunePlan) -> None:
    """Katib puts a trial's values into the template as text: a value that would change the
    JSON it lands in (a quote, a backslash) cannot travel that way."""
    for space in plan.spaces:
        for choice in space.choices:
            text = json.dumps(choice)
            if isinstance(choice, (list, dict)) or any(c in str(choice) for c in '"\\{}$'):
                raise UserError(
                    f"{plan.prepared.name}: --search {space.name}: the value {text} cannot be a "
                    "Katib parameter (no quotes, backslashes, braces or $ in values; lists and "
                    "dicts not at all): tune it here (--engine local) or choose plain values",
                    reason="bad_search",
                )


# --- the Experiment -------------------------------------------------------------------------


def experiment(plan: TunePlan, name: str, namespace: str, trial: PodSettings) -> Any:
    """The Katib Experiment, as the Katib API's typed models."""
    from kubernetes import client as k8s

    katib = importlib.import_module("kubeflow_katib_api.models")  # typed as Any: no hints

    request = plan.request
    spec = katib.V1beta1ExperimentSpec(
        objective=katib.V1beta1ObjectiveSpec(
            type=request.direction,
            objective_metric_name=request.objective,
            goal=request.goal,
            additional_metric_names=[
                m for m in plan.prepared.pipeline.metrics if m != request.objective
            ]
            or None,
        ),
        algorithm=katib.V1beta1AlgorithmSpec(
            algorithm_name=KATIB_ALGORITHMS[request.algorithm],
            algorithm_settings=_algorithm_settings(katib, request.algorithm, request.seed),
        ),
        parameters=[_parameter(katib, s) for s in plan.spaces],
        max_trial_count=plan.trials,
        parallel_trial_count=min(plan.parallel, plan.trials),
        max_failed_trial_count=min(request.max_failed, plan.trials),
        metrics_collector_spec=katib.V1beta1MetricsCollectorSpec(
            collector=katib.V1beta1CollectorSpec(kind="StdOut"),
            source=katib.V1beta1SourceSpec(
                filter=katib.V1beta1FilterSpec(metrics_format=[METRICS_FORMAT])
            ),
        ),
        trial_template=katib.V1beta1TrialTemplate(
            primary_container_name=TRIAL_CONTAINER,
            success_condition=JOB_SUCCEEDED,
            failure_condition=JOB_FAILED,
            trial_parameters=[
                katib.V1beta1TrialParameterSpec(
                    name=s.name, reference=s.name, description=f"{s.name}: {s.text}"
                )
                for s in plan.spaces
            ]
            + [
                katib.V1beta1TrialParameterSpec(
                    name=TRIAL_NAME, reference="${trialSpec.Name}", description="the trial's name"
                )
            ],
            trial_spec=to_dict(trial_job(plan, trial)),
        ),
    )
    metadata = k8s.V1ObjectMeta(name=name, namespace=namespace, labels=dict(trial.labels))
    return katib.V1beta1Experiment(
        api_version=f"{KATIB_GROUP}/{KATIB_VERSION}",
        kind="Experiment",
        metadata=to_dict(metadata),
        spec=spec,
    )


def _algorithm_settings(katib: Any, algorithm: str, seed: int | None) -> list[Any] | None:
    if seed is None or algorithm == "grid":
        return None
    # Katib's random, tpe (hyperopt) and bayesianoptimization (skopt) suggestions read it
    name = "random_state"
    return [katib.V1beta1AlgorithmSetting(name=name, value=str(seed))]


def _parameter(katib: Any, space: Any) -> Any:
    kind, feasible = space.katib()
    return katib.V1beta1ParameterSpec(
        name=space.name,
        parameter_type=kind,
        feasible_space=katib.V1beta1FeasibleSpace(**feasible),
    )


def trial_job(plan: TunePlan, settings: PodSettings) -> Any:
    """Katib's trial template: a batch Job (no name: Katib names it after the Trial)."""
    from kubernetes import client as k8s

    main = container(TRIAL_CONTAINER, settings, [])
    main.command, main.args = ["sh", "-c", trial_script(plan, settings.run_dir)], None
    for variable in main.env:
        if variable.name == "CELLPIPE_PARAMETERS":
            variable.value = parameters_template(plan)
    wait_for = settings.run_dir if plan.shared_steps else None
    template = pod_template(settings, main, wait_for=wait_for, restart_policy="Never")
    return k8s.V1Job(
        api_version="batch/v1",
        kind="Job",
        spec=k8s.V1JobSpec(backoff_limit=0, template=template),
    )


def parameters_template(plan: TunePlan) -> str:
    """CELLPIPE_PARAMETERS with Katib's placeholders where the tuned values go: as JSON
    numbers and booleans, or inside a JSON string for text."""
    tuned = {s.name for s in plan.spaces}
    parts = []
    for name, parameter in plan.prepared.pipeline.parameters.items():
        if name not in tuned:
            parts.append(f"{json.dumps(name)}: {json.dumps(parameter.default)}")
            continue
        placeholder = f"${{trialParameters.{name}}}"
        quoted = parameter.type == "str"
        parts.append(f"{json.dumps(name)}: " + (f'"{placeholder}"' if quoted else placeholder))
    return "{" + ", ".join(parts) + "}"


def trial_script(plan: TunePlan, run_dir: str) -> str:
    """The trial's shell: its own folder with the shared values linked in, the tuned steps,
    then each metric on a line of its own for Katib's collector."""
    folder = f"{run_dir}/trials/${{trialParameters.{TRIAL_NAME}}}"
    entry = " ".join(shlex.quote(p) for p in ENTRY)
    tasks = ",".join(s.task for s in plan.tuned_steps)
    report = (
        "import json,sys\n"
        "for k, v in json.load(open(sys.argv[1])).get('metrics', {}).items():\n"
        f"    print('{METRIC_PREFIX} %s=%r' % (k, float(v)), flush=True)"
    )
    return "\n".join(
        [
            "set -e",
            f"trial={shlex.quote(folder)}",
            'mkdir -p "$trial/values"',
            f'for shared in {shlex.quote(run_dir)}/values/*; do if [ -e "$shared" ]; then '
            'ln -sfn "$shared" "$trial/values/"; fi; done',
            f'{entry} prepare --run-dir "$trial" --steps {shlex.quote(tasks)}',
            f'python3 -c {shlex.quote(report)} "$trial/prepare.json"',
        ]
    )
