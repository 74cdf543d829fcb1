# jupyterhub_config.py for one GPU machine: one container and one volume per user, from the
# form, through the Docker Engine API (Docker with the NVIDIA Container Toolkit).
# `pip install 'cellpipe[spawner]' jupyterhub-idle-culler` where the hub runs.
# (tests/spawner/test_config.py loads this file and checks every setting.)
from cellpipe.spawner import idle_culler

c = get_config()  # noqa: F821

c.JupyterHub.spawner_class = "cellpipe.spawner.DockerGPUSpawner"
c.JupyterHub.hub_ip = "0.0.0.0"  # the containers reach the hub through the Docker bridge
c.JupyterHub.hub_connect_ip = "172.17.0.1"  # the bridge's address on this host

c.CellPipe.gpu_types = [
    {"name": "NVIDIA-A100-SXM4-80GB", "display_name": "A100 80 GB"},
]
# This host's GPUs are read with nvidia-smi; list them when the Docker API is elsewhere:
# c.DockerGPUSpawner.gpu_devices = [{"id": "0", "type": "NVIDIA-A100-SXM4-80GB"}, ...]
c.DockerGPUSpawner.gpu_sharing = 1  # a GPU belongs to one server at a time

c.DockerGPUSpawner.images = [
    {
        "image": "registry.example.com/team/notebook-cuda:2025.1",
        "display_name": "CUDA 12 + PyTorch",
    },
]
c.DockerGPUSpawner.cpu_choices = ["2", "4", "8"]
c.DockerGPUSpawner.memory_choices = ["8Gi", "16Gi", "32Gi"]
c.DockerGPUSpawner.default_limits = {"gpus": 1}
c.DockerGPUSpawner.group_limits = {"gpu-team": {"gpus": 4}}

# Each user's home: the named volume cellpipe-home-USER-HASH at /home/jovyan.
c.DockerGPUSpawner.home_mount_path = "/home/jovyan"

culler, culler_role = idle_culler(timeout=3600)
c.JupyterHub.services = [culler]
c.JupyterHub.load_roles = [culler_role]
