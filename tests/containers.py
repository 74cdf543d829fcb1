"""Real container infrastructure for the image tests, as session-scoped pytest fixtures.

What runs (ENVIRONMENT.md): Debian's podman 4.3 with runc, serving the Docker Engine API on a unix
socket; Debian's docker-registry (the CNCF distribution registry) as plain-HTTP registries on
127.0.0.1; a Python 3 base image built with mmdebstrap (there is no Docker Hub here), cached
between runs and pushed to the test registry.

Fixtures (registered for every test directory in tests/conftest.py):

- ``container_engine`` -> :class:`ContainerEngine`: ``docker_host``, ``env``, ``client()``,
  ``podman(*args)``. Its podman state (storage, locks, networks, events) is private to the pytest
  session, under a pytest tmp dir; it does not touch /var/lib/containers nor /run/libpod.
- ``registry``, ``readonly_registry`` (pushes refused) -> :class:`Registry`: ``host``, ``url``.
- ``auth_registry`` (htpasswd basic auth) -> :class:`AuthRegistry`: also ``username``,
  ``password``.
- ``base_image`` -> :class:`BaseImage`: ``ref`` (in ``registry``), ``local_ref`` (in the engine),
  ``python_version``, ``architecture``, ``digest``.

A missing tool fails the fixture (never skips) and names the Debian packages to install.
Servers listen on 127.0.0.1 only and are stopped when the session ends; containers created
during the session are removed.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import hashlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import docker
import pytest
import requests
import yaml

APT_INSTALL = "apt-get install podman runc docker-registry mmdebstrap"

# command -> Debian package that provides it
TOOL_PACKAGES: dict[str, str] = {
    "podman": "podman",
    "runc": "runc",
    "conmon": "conmon",
    "docker-registry": "docker-registry",
    "mmdebstrap": "mmdebstrap",
}

ENGINE_TOOLS = ("podman", "runc", "conmon")
REGISTRY_TOOLS = ("docker-registry",)
BASE_IMAGE_TOOLS = ("mmdebstrap",)

# The registries the session starts; their ports are chosen before podman starts, because the
# podman service reads registries.conf once (a later edit is not seen by a running service).
REGISTRY_NAMES = ("registry", "readonly_registry", "auth_registry")

PROCESS_STOP_TIMEOUT = 15.0
SERVER_START_TIMEOUT = 60.0


# --------------------------------------------------------------------------------------------
# small helpers


def require_tools(*names: str) -> dict[str, str]:
    """The paths of the named commands; fails (never skips), naming the Debian packages."""
    found: dict[str, str] = {}
    missing: list[str] = []
    # podman finds runc and conmon in the sbin and libexec dirs even when PATH lacks them
    search = os.pathsep.join(
        [os.environ.get("PATH", ""), "/usr/sbin", "/sbin", "/usr/libexec/podman"]
    )
    for name in names:
        path = shutil.which(name, path=search)
        if path is None:
            missing.append(name)
        else:
            found[name] = path
    if missing:
        packages = sorted({TOOL_PACKAGES.get(name, name) for name in missing})
        pytest.fail(
            f"container tests need {', '.join(missing)} on PATH (Debian package "
            f"{', '.join(packages)}); install with: {APT_INSTALL}",
            pytrace=False,
        )
    return found


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _tail(path: Path, limit: int = 4000) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return text[-limit:]


class CommandFailed(subprocess.CalledProcessError):
    """A CalledProcessError whose message carries the command's output."""

    def __str__(self) -> str:
        out = self.stdout if isinstance(self.stdout, str) else ""
        err = self.stderr if isinstance(self.stderr, str) else ""
        return f"{super().__str__()}\nstdout: {out[-2000:]}\nstderr: {err[-4000:]}"


def run_command(
    args: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    check: bool = True,
    timeout: float = 300,
    input: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Runs a command to completion, capturing text output; raises CommandFailed when asked."""
    proc = subprocess.run(
        list(args),
        env=dict(env) if env is not None else None,
        capture_output=True,
        text=True,
        timeout=timeout,
        input=input,
        check=False,
    )
    if check and proc.returncode != 0:
        raise CommandFailed(proc.returncode, proc.args, proc.stdout, proc.stderr)
    return proc


def _die_with_parent() -> None:
    """In the child before exec: be sent SIGTERM if pytest dies without tearing down."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM, 0, 0, 0)


@dataclass
class ServerProcess:
    """A background server started by a fixture, its output going to a log file."""

    args: list[str]
    log_path: Path
    env: dict[str, str] | None = None
    popen: subprocess.Popen[bytes] | None = field(default=None, init=False)

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.popen = subprocess.Popen(
                self.args,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def exited(self) -> bool:
        return self.popen is None or self.popen.poll() is not None

    def wait_until(self, ready: Callable[[], bool], what: str, timeout: float) -> None:
        """Polls `ready` until true; fails with the log when the process dies or time runs out."""
        deadline = time.monotonic() + timeout
        while True:
            if self.exited():
                pytest.fail(
                    f"{what}: `{' '.join(self.args)}` exited "
                    f"(status {self.popen.returncode if self.popen else None}); "
                    f"log {self.log_path}:\n{_tail(self.log_path)}",
                    pytrace=False,
                )
            if ready():
                return
            if time.monotonic() > deadline:
                pytest.fail(
                    f"{what}: not ready after {timeout:.0f} s; log {self.log_path}:\n"
                    f"{_tail(self.log_path)}",
                    pytrace=False,
                )
            time.sleep(0.1)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after a grace period; always reaps the process."""
        if self.popen is None or self.popen.poll() is not None:
            return
        self.popen.terminate()
        try:
            self.popen.wait(PROCESS_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(PROCESS_STOP_TIMEOUT)


def _short_state_dir(tmp_path_factory: pytest.TempPathFactory, name: str) -> tuple[Path, bool]:
    """A pytest tmp dir, short enough for a unix socket path (108 bytes), else one in /tmp.

    Returns (path, ours_to_remove): pytest rotates its own tmp dirs, not the fallback.
    """
    path = tmp_path_factory.mktemp(name)
    if len(str(path / "podman.sock")) < 100:
        return path, False
    return Path(tempfile.mkdtemp(prefix=f"cp-{name}-")), True


def _mounts_under(root: Path) -> list[str]:
    prefix = str(root.resolve()) + "/"
    mounts: list[str] = []
    with open("/proc/self/mountinfo") as info:
        for line in info:
            fields = line.split()
            if len(fields) > 4:
                point = fields[4].replace("\\040", " ")
                if point.startswith(prefix):
                    mounts.append(point)
    return mounts


def _pids_mentioning(text: str) -> list[int]:
    """Processes whose command line mentions `text` (our own private state dir)."""
    pids: list[int] = []
    needle = text.encode()  # a directory path given with its trailing slash
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if needle in cmdline:
            pids.append(int(entry.name))
    return pids


# --------------------------------------------------------------------------------------------
# the container engine: podman's Docker API service


@dataclass
class ContainerEngine:
    """podman 4.3 with runc, serving the Docker Engine API on a unix socket.

    `env` holds what a subprocess needs to reach this engine and its private state:
    DOCKER_HOST, CONTAINERS_CONF, CONTAINERS_REGISTRIES_CONF and CONTAINERS_STORAGE_CONF (the
    podman CLI and the service share one store). `subprocess_env()` is os.environ plus `env`.
    """

    docker_host: str
    env: dict[str, str]
    root: Path
    socket_path: Path
    containers_conf: Path
    registries_conf: Path
    storage_conf: Path
    service_log: Path
    _client: docker.DockerClient | None = field(default=None, init=False, repr=False)

    def subprocess_env(self) -> dict[str, str]:
        return {**os.environ, **self.env}

    def new_client(self, timeout: int = 300) -> docker.DockerClient:
        """A fresh Docker SDK client on the socket; close it when done."""
        return docker.DockerClient(base_url=self.docker_host, timeout=timeout)

    def client(self) -> docker.DockerClient:
        """The session's shared Docker SDK client (closed at session end)."""
        if self._client is None:
            self._client = self.new_client()
        return self._client

    def podman(
        self,
        *args: str,
        check: bool = True,
        timeout: float = 300,
        input: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Runs the podman CLI against this engine's state; raises CommandFailed if asked."""
        return run_command(
            ["podman", *args],
            env=self.subprocess_env(),
            check=check,
            timeout=timeout,
            input=input,
        )

    def close_client(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


def write_engine_config(root: Path, registry_hosts: Sequence[str]) -> dict[str, Path]:
    """containers.conf, storage.conf and registries.conf for a private podman state under root."""
    run = root / "run"
    storage = root / "storage"
    tmp = root / "tmp"
    for path in (run, storage, tmp):
        path.mkdir(parents=True, exist_ok=True)
    containers_conf = root / "containers.conf"
    # default_ulimits and runc are required here (ENVIRONMENT.md); the rest keeps podman's state
    # private: file locks instead of the host-wide /dev/shm/libpod_lock (whose refresh would free
    # the locks of every other podman on the machine), tmp_dir off /run/libpod, events in a
    # file, cgroupfs instead of systemd scopes, k8s-file logs (no journald).
    containers_conf.write_text(
        "[containers]\n"
        "default_ulimits = []\n"
        'log_driver = "k8s-file"\n'
        "\n"
        "[engine]\n"
        'runtime = "runc"\n'
        'cgroup_manager = "cgroupfs"\n'
        'events_logger = "file"\n'
        f'events_logfile_path = "{root}/events.log"\n'
        'lock_type = "file"\n'
        f'tmp_dir = "{run}/libpod"\n'
        f'volume_path = "{storage}/volumes"\n'
        f'image_copy_tmp_dir = "{tmp}"\n'
        "\n"
        "[network]\n"
        f'network_config_dir = "{root}/networks"\n'
    )
    storage_conf = root / "storage.conf"
    storage_conf.write_text(
        f'[storage]\ndriver = "overlay"\ngraphroot = "{storage}"\nrunroot = "{run}/storage"\n'
    )
    registries_conf = root / "registries.conf"
    # Each test registry by host:port. The broad "127.0.0.1" and "localhost" entries cover
    # registries a test starts on a port of its own: podman 4.3 matches "127.0.0.1" as a prefix of
    # "127.0.0.1:PORT" (containers/image calls this unintended; don't rely on it with newer podman).
    entries = [*registry_hosts, "127.0.0.1", "localhost"]
    registries_conf.write_text(
        "unqualified-search-registries = []\n\n"
        + "".join(
            f'[[registry]]\nlocation = "{location}"\ninsecure = true\n\n' for location in entries
        )
    )
    return {
        "containers_conf": containers_conf,
        "storage_conf": storage_conf,
        "registries_conf": registries_conf,
    }


def _socket_answers(docker_host: str) -> bool:
    try:
        client = docker.DockerClient(base_url=docker_host, timeout=5, version="auto")
    except docker.errors.DockerException:
        return False
    try:
        return bool(client.ping())
    except (docker.errors.DockerException, requests.RequestException, OSError):
        return False
    finally:
        client.close()


def _remove_engine_leftovers(engine: ContainerEngine) -> None:
    """Removes every container, pod, volume and network of this private engine."""
    engine.close_client()
    for args in (
        ("pod", "rm", "--all", "--force", "--time", "0"),
        ("rm", "--all", "--force", "--time", "0"),
        ("volume", "rm", "--all", "--force"),
        ("network", "prune", "--force"),
    ):
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            engine.podman(*args, check=False, timeout=120)


@contextlib.contextmanager
def start_container_engine(
    root: Path, registry_hosts: Sequence[str], *, remove_state: bool = False
) -> Iterator[ContainerEngine]:
    """Starts `podman system service` on root/podman.sock; stops it and cleans up on exit.

    On exit: removes every container, pod and volume, stops the service, ends any conmon left
    behind under root, unmounts what is still mounted there; `remove_state` deletes root too.
    """
    require_tools(*ENGINE_TOOLS)
    paths = write_engine_config(root, registry_hosts)
    socket_path = root / "podman.sock"
    docker_host = f"unix://{socket_path}"
    env = {
        "DOCKER_HOST": docker_host,
        "CONTAINERS_CONF": str(paths["containers_conf"]),
        "CONTAINERS_REGISTRIES_CONF": str(paths["registries_conf"]),
        "CONTAINERS_STORAGE_CONF": str(paths["storage_conf"]),
    }
    engine = ContainerEngine(
        docker_host=docker_host,
        env=env,
        root=root,
        socket_path=socket_path,
        containers_conf=paths["containers_conf"],
        registries_conf=paths["registries_conf"],
        storage_conf=paths["storage_conf"],
        service_log=root / "podman-service.log",
    )
    service = ServerProcess(
        ["podman", "system", "service", "--time=0", docker_host],
        log_path=engine.service_log,
        env=engine.subprocess_env(),
    )
    service.start()
    try:
        service.wait_until(
            lambda: socket_path.exists() and _socket_answers(docker_host),
            "podman system service",
            SERVER_START_TIMEOUT,
        )
        yield engine
    finally:
        _remove_engine_leftovers(engine)
        service.stop()
        # conmon of a container that could not be removed would hold our state dir: end it
        for pid in _pids_mentioning(f"{root}/"):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for mount in reversed(_mounts_under(root)):
            subprocess.run(["umount", "-l", mount], check=False, capture_output=True)
        # The image store (~150 MB) stays for pytest's tmp dir rotation to remove (deleting it
        # here costs ~5 s at every session end); only a dir outside pytest's is removed now.
        if remove_state and not _mounts_under(root):
            shutil.rmtree(root, ignore_errors=True)


# --------------------------------------------------------------------------------------------
# registries


@dataclass(frozen=True)
class Registry:
    """A docker-registry (distribution 2.8) on plain HTTP, 127.0.0.1 only."""

    host: str  # "127.0.0.1:PORT"
    url: str  # "http://127.0.0.1:PORT"
    root: Path  # its filesystem storage
    config_path: Path
    log_path: Path
    readonly: bool

    @property
    def auth(self) -> tuple[str, str] | None:
        return None

    def ref(self, repository: str, tag: str = "latest") -> str:
        return f"{self.host}/{repository}:{tag}"

    def get(self, path: str, headers: Mapping[str, str] | None = None) -> requests.Response:
        """GET on the registry API (path like "/v2/_catalog"), with credentials if any."""
        return requests.get(f"{self.url}{path}", auth=self.auth, headers=headers, timeout=30)

    def catalog(self) -> list[str]:
        response = self.get("/v2/_catalog")
        response.raise_for_status()
        repositories: list[str] = response.json().get("repositories") or []
        return repositories

    def tags(self, repository: str) -> list[str]:
        response = self.get(f"/v2/{repository}/tags/list")
        response.raise_for_status()
        tags: list[str] = response.json().get("tags") or []
        return tags

    def manifest_digest(self, repository: str, reference: str) -> str:
        response = requests.head(
            f"{self.url}/v2/{repository}/manifests/{reference}",
            auth=self.auth,
            timeout=30,
            headers={
                "Accept": ", ".join(
                    [
                        "application/vnd.oci.image.manifest.v1+json",
                        "application/vnd.oci.image.index.v1+json",
                        "application/vnd.docker.distribution.manifest.v2+json",
                        "application/vnd.docker.distribution.manifest.list.v2+json",
                    ]
                )
            },
        )
        response.raise_for_status()
        return response.headers["Docker-Content-Digest"]


@dataclass(frozen=True)
class AuthRegistry(Registry):
    """A registry that demands HTTP basic auth (htpasswd, bcrypt)."""

    username: str
    password: str

    @property
    def auth(self) -> tuple[str, str] | None:
        return (self.username, self.password)

    @property
    def auth_config(self) -> dict[str, str]:
        """For the docker SDK: client.images.push(..., auth_config=registry.auth_config)."""
        return {"username": self.username, "password": self.password}


def bcrypt_hash(password: str) -> str:
    """A bcrypt hash for an htpasswd file (the only scheme docker-registry accepts).

    Python's `bcrypt` when installed; else libcrypt.so.1 (libxcrypt, in Debian's essential
    libcrypt1 package), which implements $2b$.
    """
    try:
        import bcrypt  # type: ignore[import-not-found]
    except ImportError:
        pass
    else:
        hashed: bytes = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=5))
        return hashed.decode()
    try:
        libcrypt = ctypes.CDLL("libcrypt.so.1")
    except OSError:
        pytest.fail(
            "auth_registry needs bcrypt hashes: neither the Python package `bcrypt` nor "
            "libcrypt.so.1 (Debian package libcrypt1) is available",
            pytrace=False,
        )
    libcrypt.crypt_gensalt_rn.restype = ctypes.c_char_p
    libcrypt.crypt_gensalt_rn.argtypes = [
        ctypes.c_char_p,
        ctypes.c_ulong,
        ctypes.c_char_p,
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_int,
    ]
    libcrypt.crypt_rn.restype = ctypes.c_char_p
    libcrypt.crypt_rn.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_void_p, ctypes.c_int]
    salt_buffer = ctypes.create_string_buffer(128)
    salt = libcrypt.crypt_gensalt_rn(b"$2b$", 5, None, 0, salt_buffer, len(salt_buffer))
    data = ctypes.create_string_buffer(32768)  # sizeof(struct crypt_data) in libxcrypt
    result = libcrypt.crypt_rn(password.encode(), salt, data, len(data)) if salt else None
    if not result or not result.startswith(b"$2b$"):
        pytest.fail("libcrypt.so.1 could not make a bcrypt ($2b$) hash", pytrace=False)
    return bytes(result).decode()


def write_registry_config(
    root: Path,
    port: int,
    *,
    readonly: bool = False,
    htpasswd: Path | None = None,
) -> Path:
    storage: dict[str, object] = {
        "filesystem": {"rootdirectory": str(root / "data")},
        "delete": {"enabled": True},
        "maintenance": {
            "uploadpurging": {"enabled": False},
            "readonly": {"enabled": readonly},
        },
    }
    config: dict[str, object] = {
        "version": 0.1,
        "log": {"level": "info", "accesslog": {"disabled": True}},
        "storage": storage,
        "http": {
            "addr": f"127.0.0.1:{port}",
            "secret": secrets.token_hex(16),
            "headers": {"X-Content-Type-Options": ["nosniff"]},
        },
    }
    if htpasswd is not None:
        config["auth"] = {"htpasswd": {"realm": "cellpipe-test", "path": str(htpasswd)}}
    path = root / f"config-{port}.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def _v2_status(url: str, auth: tuple[str, str] | None) -> int | None:
    try:
        return requests.get(f"{url}/v2/", auth=auth, timeout=2).status_code
    except requests.RequestException:
        return None


def _registry_ready(url: str, credentials: tuple[str, str] | None) -> Callable[[], bool]:
    return lambda: _v2_status(url, credentials) == 200


@contextlib.contextmanager
def start_registry(
    root: Path,
    port: int,
    *,
    readonly: bool = False,
    credentials: tuple[str, str] | None = None,
) -> Iterator[Registry]:
    """Runs `docker-registry serve` on 127.0.0.1:port (another free port if that one is taken)."""
    require_tools(*REGISTRY_TOOLS)
    root.mkdir(parents=True, exist_ok=True)
    htpasswd: Path | None = None
    if credentials is not None:
        htpasswd = root / "htpasswd"
        htpasswd.write_text(f"{credentials[0]}:{bcrypt_hash(credentials[1])}\n")
    for attempt in range(3):
        config = write_registry_config(root, port, readonly=readonly, htpasswd=htpasswd)
        log_path = root / f"registry-{port}.log"
        server = ServerProcess(["docker-registry", "serve", str(config)], log_path=log_path)
        server.start()
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while not server.exited() and time.monotonic() < deadline:
            if _v2_status(url, credentials) == 200:
                break
            time.sleep(0.05)
        if server.exited() and "address already in use" in _tail(log_path) and attempt < 2:
            port = free_port()  # lost the race for the reserved port: take another one
            continue
        try:
            # fails with the log if it died; and checks the one answering is ours
            server.wait_until(
                _registry_ready(url, credentials), f"docker-registry on 127.0.0.1:{port}", 1.0
            )
            host = f"127.0.0.1:{port}"
            if credentials is not None:
                yield AuthRegistry(
                    host, url, root / "data", config, log_path, readonly, *credentials
                )
            else:
                yield Registry(host, url, root / "data", config, log_path, readonly)
        finally:
            server.stop()
            shutil.rmtree(root / "data", ignore_errors=True)
        return
    pytest.fail(f"docker-registry could not bind a port; see {root}", pytrace=False)


# --------------------------------------------------------------------------------------------
# the base image


@dataclass(frozen=True)
class BaseRecipe:
    """How the Python base image's rootfs is made; its hash keys the cache."""

    suite: str = "bookworm"
    mirror: str = "http://deb.debian.org/debian"
    # "apt" is Essential:yes + apt. The merged-usr hook makes the /usr symlinks itself, so the
    # usrmerge package (and the perl it pulls in) is not installed; the dpkg path filters drop
    # docs, man pages and translations. Both together: 124 MB instead of 219 MB.
    variant: str = "apt"
    include: tuple[str, ...] = ("python3", "python3-venv")
    hook_dirs: tuple[str, ...] = ("/usr/share/mmdebstrap/hooks/merged-usr",)
    dpkg_options: tuple[str, ...] = (
        "path-exclude=/usr/share/man/*",
        "path-exclude=/usr/share/info/*",
        "path-exclude=/usr/share/locale/*",
        "path-include=/usr/share/locale/locale.alias",
        "path-exclude=/usr/share/doc/*",
        "path-include=/usr/share/doc/*/copyright",
    )
    python_version: str = "3.11"
    repository: str = "cellpipe-test/python"
    tag: str = "3.11-bookworm"
    changes: tuple[str, ...] = (
        "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "ENV LANG=C.UTF-8",
        'CMD ["python3"]',
    )

    def mmdebstrap_args(self, output: Path) -> list[str]:
        return [
            "mmdebstrap",
            "--quiet",
            "--mode=root",
            "--format=tar",
            f"--variant={self.variant}",
            f"--include={','.join(self.include)}",
            *(f"--hook-dir={hook}" for hook in self.hook_dirs),
            *(f"--dpkgopt={option}" for option in self.dpkg_options),
            self.suite,
            str(output),
            self.mirror,
        ]

    @property
    def key(self) -> str:
        recipe = json.dumps(
            [1, self.mmdebstrap_args(Path("OUT"))[1:], self.changes], separators=(",", ":")
        )
        return hashlib.sha256(recipe.encode()).hexdigest()[:16]


BASE_RECIPE = BaseRecipe()


def cache_dir() -> Path:
    """CELLPIPE_TEST_CACHE, else ~/.cache/cellpipe-tests."""
    override = os.environ.get("CELLPIPE_TEST_CACHE")
    return Path(override) if override else Path.home() / ".cache" / "cellpipe-tests"


def cached_rootfs_path(recipe: BaseRecipe = BASE_RECIPE) -> Path:
    return cache_dir() / f"base-{recipe.key}.tar"


def build_rootfs(recipe: BaseRecipe = BASE_RECIPE, timeout: float = 600) -> tuple[Path, bool]:
    """The cached rootfs tar for the recipe, built with mmdebstrap when missing.

    Returns (path, built_now). A lock file makes concurrent sessions wait for one build.
    """
    target = cached_rootfs_path(recipe)
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if target.exists():
            return target, False
        require_tools(*BASE_IMAGE_TOOLS)
        partial = target.with_name(f"{target.stem}.partial-{os.getpid()}.tar")
        try:
            run_command(recipe.mmdebstrap_args(partial), timeout=timeout)
            os.replace(partial, target)
        finally:
            partial.unlink(missing_ok=True)
        return target, True


@dataclass(frozen=True)
class BaseImage:
    """The Python base image: in the engine (`local_ref`) and in the `registry` (`ref`)."""

    ref: str  # "127.0.0.1:PORT/cellpipe-test/python:3.11-bookworm"
    local_ref: str  # "localhost/cellpipe-test/python:3.11-bookworm"
    python_version: str  # "3.11"
    architecture: str  # "amd64", as the image config says
    os: str  # "linux"
    digest: str  # manifest digest in the registry: f"{ref.rsplit(':', 1)[0]}@{digest}" pins it
    image_id: str  # "sha256:...", as the Docker API writes it
    rootfs_tar: Path  # the cached mmdebstrap output
    built: bool  # True when this session ran mmdebstrap (no cached rootfs)
    timings: dict[str, float]  # seconds: rootfs (build or cache hit), import, push

    @property
    def pinned_ref(self) -> str:
        return f"{self.ref.rsplit(':', 1)[0]}@{self.digest}"


def make_base_image(
    engine: ContainerEngine, registry: Registry, recipe: BaseRecipe = BASE_RECIPE
) -> BaseImage:
    timings: dict[str, float] = {}
    started = time.monotonic()
    rootfs, built = build_rootfs(recipe)
    timings["rootfs"] = time.monotonic() - started

    local_ref = f"localhost/{recipe.repository}:{recipe.tag}"
    started = time.monotonic()
    changes = [*recipe.changes, f"LABEL org.cellpipe.test.recipe={recipe.key}"]
    engine.podman(
        "import", "--quiet", *(f"--change={change}" for change in changes), str(rootfs), local_ref
    )
    timings["import"] = time.monotonic() - started

    ref = registry.ref(recipe.repository, recipe.tag)
    started = time.monotonic()
    engine.podman("push", "--quiet", "--tls-verify=false", local_ref, ref)
    timings["push"] = time.monotonic() - started

    inspected = json.loads(engine.podman("image", "inspect", local_ref).stdout)[0]
    return BaseImage(
        ref=ref,
        local_ref=local_ref,
        python_version=recipe.python_version,
        architecture=inspected["Architecture"],
        os=inspected["Os"],
        digest=registry.manifest_digest(recipe.repository, recipe.tag),
        image_id="sha256:" + inspected["Id"].removeprefix("sha256:"),
        rootfs_tar=rootfs,
        built=built,
        timings=timings,
    )


# --------------------------------------------------------------------------------------------
# the fixtures (registered in tests/conftest.py)


@pytest.fixture(scope="session")
def registry_ports() -> dict[str, int]:
    """Ports for the session's registries, known before podman reads registries.conf."""
    ports: dict[str, int] = {}
    while len(ports) < len(REGISTRY_NAMES):
        port = free_port()
        if port not in ports.values():
            ports[REGISTRY_NAMES[len(ports)]] = port
    return ports


@pytest.fixture(scope="session")
def container_engine(
    tmp_path_factory: pytest.TempPathFactory, registry_ports: dict[str, int]
) -> Iterator[ContainerEngine]:
    root, remove_state = _short_state_dir(tmp_path_factory, "podman")
    hosts = [f"127.0.0.1:{port}" for port in registry_ports.values()]
    with start_container_engine(root, hosts, remove_state=remove_state) as engine:
        yield engine


@pytest.fixture(scope="session")
def registry(
    tmp_path_factory: pytest.TempPathFactory, registry_ports: dict[str, int]
) -> Iterator[Registry]:
    root = tmp_path_factory.mktemp("registry")
    with start_registry(root, registry_ports["registry"]) as server:
        yield server


@pytest.fixture(scope="session")
def readonly_registry(
    tmp_path_factory: pytest.TempPathFactory, registry_ports: dict[str, int]
) -> Iterator[Registry]:
    """A registry in read-only maintenance mode: pulls answer, pushes are refused (405)."""
    root = tmp_path_factory.mktemp("readonly-registry")
    with start_registry(root, registry_ports["readonly_registry"], readonly=True) as server:
        yield server


@pytest.fixture(scope="session")
def auth_registry(
    tmp_path_factory: pytest.TempPathFactory, registry_ports: dict[str, int]
) -> Iterator[AuthRegistry]:
    root = tmp_path_factory.mktemp("auth-registry")
    credentials = (f"user-{secrets.token_hex(4)}", secrets.token_urlsafe(18))
    with start_registry(root, registry_ports["auth_registry"], credentials=credentials) as server:
        assert isinstance(server, AuthRegistry)
        yield server


@pytest.fixture(scope="session")
def base_image(container_engine: ContainerEngine, registry: Registry) -> BaseImage:
    return make_base_image(container_engine, registry)


# The first test that needs base_image pays for the one-time mmdebstrap build when the cache is
# cold (30-60 s here, more on a slow mirror): that one test gets this timeout instead of 120 s.
COLD_CACHE_TIMEOUT = 900


def extend_timeout_for_cold_base_image(items: Sequence[pytest.Item]) -> None:
    if cached_rootfs_path().exists():
        return
    for item in items:
        if "base_image" in getattr(item, "fixturenames", ()):
            marker = item.get_closest_marker("timeout")
            current = marker.args[0] if marker is not None and marker.args else None
            if not isinstance(current, (int, float)) or current < COLD_CACHE_TIMEOUT:
                item.add_marker(pytest.mark.timeout(COLD_CACHE_TIMEOUT), append=False)
            return
