# jupyterhub_config.py for a GPU cluster: one pod and one home PVC per user, from the form.
# `pip install 'cellpipe[spawner]' jupyterhub-idle-culler` where the hub runs.
# (tests/spawner/test_config.py loads this file and checks every setting.)
from cellpipe.spawner import idle_culler

c = get_config()  # noqa: F821

c.JupyterHub.spawner_class = "cellpipe.spawner.KubeGPUSpawner"

# The GPU types: the same c.CellPipe settings the sidebar, the CLI and the engines read.
c.CellPipe.gpu_types = [
    {"name": "NVIDIA-A100-SXM4-80GB", "display_name": "A100 80 GB"},
    {"name": "Tesla-T4", "display_name": "T4 16 GB"},
    {
        "name": "1g.10gb",
        "display_name": "A100 slice (MIG 1g.10gb)",
        "resource": "nvidia.com/mig-1g.10gb",
    },
]
c.CellPipe.gpu_label = "nvidia.com/gpu.product"  # the label GPU feature discovery sets
# c.CellPipe.gpu_tolerations = [...]  # default: tolerate the taint named for the resource

# What the form offers.
c.KubeGPUSpawner.images = [
    {
        "image": "registry.example.com/team/notebook-cuda:2025.1",
        "display_name": "CUDA 12 + PyTorch",
    },
    {"image": "registry.example.com/team/notebook:2025.1", "display_name": "CPU only"},
]
c.KubeGPUSpawner.allow_custom_image = False
c.KubeGPUSpawner.cpu_choices = ["2", "4", "8"]
c.KubeGPUSpawner.memory_choices = ["8Gi", "16Gi", "64Gi"]

# Limits per user, across all their running servers; groups may give more.
c.KubeGPUSpawner.default_limits = {"gpus": 1, "cpu": "8", "memory": "64Gi"}
c.KubeGPUSpawner.group_limits = {"gpu-team": {"gpus": 4, "cpu": "32", "memory": "256Gi"}}
c.JupyterHub.allow_named_servers = True

# Each user's home: a PVC of this size (KubeSpawner's storage settings), at /home/jovyan.
c.KubeGPUSpawner.storage_capacity = "50Gi"
c.KubeGPUSpawner.storage_class = "standard-rwo"
c.KubeGPUSpawner.namespace = "jupyterhub"

# Stop servers idle for an hour: their GPUs go back to the pool; the PVC stays.
culler, culler_role = idle_culler(timeout=3600)
c.JupyterHub.services = [culler]
c.JupyterHub.load_roles = [culler_role]
