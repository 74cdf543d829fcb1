"""cellpipe: tag notebook cells as steps; run the notebook as a Kubeflow pipeline.

This module is imported first by everything under `cellpipe`, step images included, so it
imports nothing heavy: front doors (CLI, magics, server) import their own dependencies.
"""

__version__ = "0.1.0"
