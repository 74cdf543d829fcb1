"""cellpipe.runtime: what runs inside a step, locally or in an image.

Small on purpose: it imports nothing else of cellpipe and needs only the standard library
(cloudpickle, numpy, pandas, pyarrow, torch, joblib are used when a value of theirs is handed
on), so it is cheap to bake into any image.
"""

from .step import StepFailed, StepResult, run_prelude, run_step

__all__ = ["StepFailed", "StepResult", "run_prelude", "run_step"]
