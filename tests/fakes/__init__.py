"""In-process fakes of the Kubernetes and Kubeflow Pipelines APIs, over real HTTP on
127.0.0.1. Each module's docstring says what the fake does and what it does not."""
