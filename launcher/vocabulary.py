"""One vocabulary for every front door (CLI, REST, UI, magics, config): run statuses, engine
names, builder names and output formats. Defined here once; everything else imports it.

Names are plain strings on the wire and in the run store; `RunStatus` is a `str` enum, so a
status read back from the store compares equal to its member.
"""

from __future__ import annotations

from enum import Enum


class RunStatus(str, Enum):
    """A run's (or a step's, or a build's) status. Front doors show these words as they
    are (the CLI's step lines, `status`, the sidebar), never marks of their own (ok, skip)."""

    PENDING = "Pending"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    CANCELLED = "Cancelled"

    def __str__(self) -> str:
        return self.value


STATUSES: tuple[str, ...] = tuple(status.value for status in RunStatus)
# A run (or step) in one of these has ended and will not change again.
FINISHED: frozenset[str] = frozenset(
    {RunStatus.SUCCEEDED.value, RunStatus.FAILED.value, RunStatus.CANCELLED.value}
)
# Not started yet, or still going on.
UNFINISHED: frozenset[str] = frozenset({RunStatus.PENDING.value, RunStatus.RUNNING.value})

# Engines that run the pipeline on this machine (`cellpipe run`).
LOCAL_ENGINE = "local"
KFP_LOCAL_ENGINE = "kfp-local"
LOCAL_ENGINES: tuple[str, ...] = (LOCAL_ENGINE, KFP_LOCAL_ENGINE)
# Engines that submit to a cluster (`cellpipe submit`).
KFP_ENGINE = "kfp"
TRAINING_ENGINES: tuple[str, ...] = ("pytorchjob", "tfjob", "xgboostjob", "mpijob", "trainjob")
CLUSTER_ENGINES: tuple[str, ...] = (KFP_ENGINE, *TRAINING_ENGINES)
ENGINES: tuple[str, ...] = (*LOCAL_ENGINES, *CLUSTER_ENGINES)
# Tuning engines (`cellpipe tune`): the trials here, or a Katib Experiment on the cluster.
KATIB_ENGINE = "katib"
TUNING_ENGINES: tuple[str, ...] = (LOCAL_ENGINE, KATIB_ENGINE)
# Their search algorithms (Katib's names for them: launcher/tune_spaces.py).
TUNE_ALGORITHMS: tuple[str, ...] = ("grid", "random", "bayesian", "tpe")
# Serving engines (`cellpipe serve`): KServe's model server here, or an InferenceService.
KSERVE_ENGINE = "kserve"
SERVING_ENGINES: tuple[str, ...] = (LOCAL_ENGINE, KSERVE_ENGINE)

# Builders, in the order people are offered them (the default first).
APPEND_BUILDER = "append"
ENGINE_BUILDER = "engine"
KANIKO_BUILDER = "kaniko"
BUILDERS: tuple[str, ...] = (APPEND_BUILDER, ENGINE_BUILDER, KANIKO_BUILDER)
DEFAULT_BUILDER = APPEND_BUILDER
# Builders that build from this machine; kaniko builds inside the cluster from a Job.
BUILDERS_HERE: tuple[str, ...] = (APPEND_BUILDER, ENGINE_BUILDER)

# What a command prints.
FORMATS: tuple[str, ...] = ("text", "json")


def is_finished(status: str) -> bool:
    return status in FINISHED
