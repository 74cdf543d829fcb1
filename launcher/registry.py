"""A small client for the OCI distribution API: what the builders need, and no daemon.

Reads manifests and configs, checks and uploads blobs, mounts blobs across repositories and
puts manifests. Credentials come from the usual places (docker's config.json, podman's
auth.json, or CELLPIPE_REGISTRY_USERNAME / CELLPIPE_REGISTRY_PASSWORD for the registry named
by CELLPIPE_REGISTRY_HOST, so they go to that registry only) and are never logged,
printed, or put into an error message.

Where they go: to the registry's own address (scheme, host and port) and to the token realm
it names when that is an https address (or, for a registry spoken to over plain HTTP, a realm
on its own host or on loopback). Nothing else receives them: not a host an upload's Location
names (blob storage; it is spoken to without them), not a host a redirect leads to (requests
drops the header across hosts), not a realm over plain HTTP elsewhere (an error says so).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

import requests

from cellpipe.converter.images_ref import parse_reference, reference_problem, registry_problem

from .errors import UserError

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MANIFEST_TYPES = (OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST)
CHUNK = 1 << 20


class RegistryError(Exception):
    """The registry refused or could not be reached; the message says which and why."""


@dataclass(frozen=True)
class ImageRef:
    registry: str  # host[:port]
    repository: str
    tag: str | None = None
    digest: str | None = None

    @classmethod
    def parse(cls, text: str) -> ImageRef:
        """`text` read by the OCI reference grammar (cellpipe.converter.images_ref); Docker
        Hub's short names (`python:3.11`) as Docker reads them; a RegistryError when it is not
        one reference."""
        try:
            name = parse_reference(text)
        except ValueError as exc:
            raise RegistryError(f"{text!r} is not a valid image reference: {exc}") from None
        if name.domain is not None:
            registry, repository = name.domain, name.path
        else:  # Docker Hub's short names
            registry = "docker.io"
            repository = name.path if "/" in name.path else f"library/{name.path}"
        tag = name.tag if name.tag or name.digest else "latest"
        return cls(registry, repository, tag, name.digest)

    @property
    def reference(self) -> str:
        return self.digest or self.tag or "latest"

    def with_tag(self, tag: str) -> ImageRef:
        return ImageRef(self.registry, self.repository, tag)

    def __str__(self) -> str:
        name = f"{self.registry}/{self.repository}"
        if self.tag:
            name += f":{self.tag}"
        return f"{name}@{self.digest}" if self.digest else name


def checked_reference(text: str, what: str = "the image") -> str:
    """`text` when it is one image reference (the OCI grammar); else a UserError saying
    `what` it was meant to be and what is wrong. Every reference cellpipe is given (a base
    image, `--image`) passes here before it is used."""
    problem = reference_problem(text)
    if problem is not None:
        raise UserError(f"{what} {text!r} is not an image reference: {problem}", reason="bad_image")
    return text


def checked_registry(text: str, what: str = "the registry") -> str:
    """`text` when it is a place to push images to (HOST[:PORT][/PATH]); else a UserError."""
    problem = registry_problem(text)
    if problem is not None:
        raise UserError(
            f"{what} {text!r} is not a registry (HOST[:PORT][/PATH]): {problem}",
            reason="bad_image",
        )
    return text


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


_LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1"})


def _origin(url: str) -> tuple[str, str, int | None]:
    """(scheme, host, port) of a URL: where a request goes, default ports filled in."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    return scheme, (parts.hostname or "").lower(), port or {"http": 80, "https": 443}.get(scheme)


def _is_insecure(registry: str) -> bool:
    host = registry.rsplit(":", 1)[0] if registry.count(":") == 1 else registry
    listed = os.environ.get("CELLPIPE_INSECURE_REGISTRIES", "").split(",")
    return host in ("localhost", "127.0.0.1", "[::1]") or registry in listed


def _auth_files() -> list[Path]:
    docker_dir = os.environ.get("DOCKER_CONFIG") or str(Path.home() / ".docker")
    files = [Path(docker_dir) / "config.json"]
    if os.environ.get("REGISTRY_AUTH_FILE"):
        files.insert(0, Path(os.environ["REGISTRY_AUTH_FILE"]))
    runtime_dir = os.environ.get("XDG_RUNTIME_DIR")
    if runtime_dir:
        files.append(Path(runtime_dir) / "containers" / "auth.json")
    return files


def credentials_for(registry: str) -> tuple[str, str] | None:
    """(username, password) for `registry`, from the environment or a docker/podman auth file."""
    user = os.environ.get("CELLPIPE_REGISTRY_USERNAME")
    password = os.environ.get("CELLPIPE_REGISTRY_PASSWORD")
    if user and password and os.environ.get("CELLPIPE_REGISTRY_HOST") == registry:
        return user, password
    for path in _auth_files():
        try:
            auths = json.loads(path.read_text()).get("auths", {})
        except (OSError, ValueError):
            continue
        for key in (registry, f"https://{registry}", f"http://{registry}"):
            entry = auths.get(key) or {}
            if entry.get("auth"):
                decoded = base64.b64decode(entry["auth"]).decode()
                name, _, secret = decoded.partition(":")
                return name, secret
            if entry.get("username") and entry.get("password"):
                return entry["username"], entry["password"]
    return None


class RegistryClient:
    """One registry; one session; tokens fetched when the registry asks for them."""

    def __init__(self, registry: str, timeout: float = 60.0) -> None:
        self.registry = registry
        host = "registry-1.docker.io" if registry == "docker.io" else registry
        self.base = f"{'http' if _is_insecure(registry) else 'https'}://{host}/v2"
        self.session = requests.Session()
        self.timeout = timeout
        self._authorization: str | None = None
        self._origin = _origin(self.base)

    # -- transport ------------------------------------------------------------------------
    def _request(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        """A request to the registry (a path under /v2), or to an address it named (an
        upload's Location): credentials only go with requests to the registry's own address;
        elsewhere a request goes without them, and a 401 there is its answer."""
        url = url if url.startswith("http") else f"{self.base}{url}"
        own = _origin(url) == self._origin
        for attempt in range(2):
            headers = dict(kwargs.pop("headers", None) or {})
            headers.pop("Authorization", None)
            if self._authorization and own:
                headers["Authorization"] = self._authorization
            try:
                response = self.session.request(
                    method, url, headers=headers, timeout=self.timeout, **kwargs
                )
            except requests.RequestException as exc:
                raise RegistryError(
                    f"cannot reach the registry {self.registry}: {type(exc).__name__}"
                ) from None
            kwargs["headers"] = headers
            if response.status_code != 401 or attempt or not own:
                return response
            self._authenticate(response.headers.get("WWW-Authenticate", ""))
            data = kwargs.get("data")
            if data is not None and hasattr(data, "seek"):
                data.seek(0)  # a file body is sent again after the login
        return response

    def _authenticate(self, challenge: str) -> None:
        creds = credentials_for(self.registry)
        scheme, _, params = challenge.partition(" ")
        if scheme.lower() == "basic":
            if not creds:
                raise RegistryError(
                    f"the registry {self.registry} asks for a login and no credentials were "
                    "found: run `podman login` / `docker login`, or set "
                    f"CELLPIPE_REGISTRY_HOST={self.registry}, CELLPIPE_REGISTRY_USERNAME and "
                    "CELLPIPE_REGISTRY_PASSWORD"
                )
            token = base64.b64encode(f"{creds[0]}:{creds[1]}".encode()).decode()
            self._authorization = f"Basic {token}"
            return
        if scheme.lower() != "bearer":
            raise RegistryError(f"the registry {self.registry} asks for unknown auth {scheme!r}")
        fields = dict(re.findall(r'(\w+)="([^"]*)"', params))
        query = {k: v for k, v in fields.items() if k in ("service", "scope")}
        realm = self._checked_realm(fields.get("realm", ""))
        try:
            response = requests.get(realm, params=query, auth=creds, timeout=self.timeout)
        except requests.RequestException as exc:
            raise RegistryError(
                f"cannot get a token for {self.registry}: {type(exc).__name__}"
            ) from None
        if response.status_code != 200:
            raise RegistryError(
                f"the registry {self.registry} refused a token (HTTP {response.status_code}); "
                "check your login"
            )
        body = response.json()
        self._authorization = f"Bearer {body.get('token') or body.get('access_token')}"

    def _checked_realm(self, realm: str) -> str:
        """The token realm the registry names, when the credentials may go there: an https
        address; or, for a registry spoken to over plain HTTP (loopback, or listed in
        CELLPIPE_INSECURE_REGISTRIES), an http address on its own host (or loopback, for
        one on loopback)."""
        scheme, host, _ = _origin(realm)
        own_scheme, own_host, _ = self._origin
        if scheme == "https" and host:
            return realm
        same_host = host == own_host or (host in _LOOPBACK and own_host in _LOOPBACK)
        if scheme == "http" and host and own_scheme == "http" and same_host:
            return realm
        raise RegistryError(
            f"the registry {self.registry} asks for a login at {realm!r}, which is not an "
            "https address on its side: cellpipe does not send its credentials there"
        )

    def _fail(self, response: requests.Response, what: str) -> RegistryError:
        try:
            errors = response.json().get("errors") or []
            detail = "; ".join(f"{e.get('code')}: {e.get('message')}" for e in errors)
        except ValueError:
            detail = response.text[:200]
        return RegistryError(
            f"{what} on {self.registry}: HTTP {response.status_code}"
            + (f" ({detail})" if detail else "")
        )

    # -- manifests ------------------------------------------------------------------------
    def manifest(self, ref: ImageRef, platform: tuple[str, str] | None = None) -> dict[str, Any]:
        """The image manifest of `ref`; from an index, the one for `platform` (os, arch)."""
        response = self._request(
            "GET",
            f"/{ref.repository}/manifests/{ref.reference}",
            headers={"Accept": ", ".join(MANIFEST_TYPES)},
        )
        if response.status_code == 404:
            raise RegistryError(f"the image {ref} does not exist on {self.registry}")
        if response.status_code != 200:
            raise self._fail(response, f"reading the manifest of {ref}")
        manifest: dict[str, Any] = response.json()
        media_type = manifest.get("mediaType") or response.headers.get("Content-Type", "")
        if media_type in (OCI_INDEX, DOCKER_LIST):
            wanted_os, wanted_arch = platform or ("linux", "amd64")
            for entry in manifest.get("manifests", []):
                plat = entry.get("platform", {})
                if plat.get("os") == wanted_os and plat.get("architecture") == wanted_arch:
                    return self.manifest(
                        ImageRef(ref.registry, ref.repository, digest=entry["digest"])
                    )
            found = [
                f"{m.get('platform', {}).get('os')}/{m.get('platform', {}).get('architecture')}"
                for m in manifest.get("manifests", [])
            ]
            raise RegistryError(
                f"{ref} has no {wanted_os}/{wanted_arch} image (it has {', '.join(found)})"
            )
        manifest.setdefault("mediaType", media_type)
        return manifest

    def manifest_exists(self, ref: ImageRef) -> str | None:
        """The digest of `ref`'s manifest, or None when there is none."""
        response = self._request(
            "HEAD",
            f"/{ref.repository}/manifests/{ref.reference}",
            headers={"Accept": ", ".join(MANIFEST_TYPES)},
        )
        if response.status_code == 200:
            return response.headers.get("Docker-Content-Digest") or "unknown"
        if response.status_code == 404:
            return None
        raise self._fail(response, f"checking {ref}")

    def put_manifest(self, repository: str, tag: str, manifest: dict[str, Any]) -> str:
        body = json.dumps(manifest, separators=(",", ":")).encode()
        response = self._request(
            "PUT",
            f"/{repository}/manifests/{tag}",
            data=body,
            headers={"Content-Type": manifest["mediaType"]},
        )
        if response.status_code not in (200, 201):
            raise self._fail(response, f"pushing the manifest {repository}:{tag}")
        return sha256_digest(body)

    # -- blobs ----------------------------------------------------------------------------
    def blob(self, repository: str, digest: str) -> bytes:
        response = self._request("GET", f"/{repository}/blobs/{digest}")
        if response.status_code != 200:
            raise self._fail(response, f"reading {digest} of {repository}")
        data = response.content
        if sha256_digest(data) != digest:
            raise RegistryError(f"{repository}: blob {digest} arrived corrupted")
        return data

    def stream_blob(self, repository: str, digest: str) -> Iterator[bytes]:
        response = self._request("GET", f"/{repository}/blobs/{digest}", stream=True)
        if response.status_code != 200:
            raise self._fail(response, f"reading {digest} of {repository}")
        yield from response.iter_content(CHUNK)

    def blob_exists(self, repository: str, digest: str) -> bool:
        response = self._request("HEAD", f"/{repository}/blobs/{digest}")
        if response.status_code in (200, 404):
            return response.status_code == 200
        raise self._fail(response, f"checking {digest} of {repository}")

    def mount_blob(self, repository: str, digest: str, source: str) -> bool:
        """Links a blob another repository of this registry has; False where it cannot."""
        response = self._request(
            "POST",
            f"/{repository}/blobs/uploads/",
            params={"mount": digest, "from": source},
        )
        if response.status_code == 201:
            return True
        if response.status_code == 202:  # not mounted: an upload was opened instead; drop it
            location = response.headers.get("Location")
            if location:
                self._request("DELETE", self._absolute(location))
            return False
        raise self._fail(response, f"pushing to {repository}")

    def upload_blob(self, repository: str, digest: str, data: bytes | IO[bytes]) -> None:
        """A monolithic upload (POST, then PUT with the digest)."""
        response = self._request("POST", f"/{repository}/blobs/uploads/")
        if response.status_code != 202:
            raise self._fail(response, f"pushing to {repository}")
        location = self._absolute(response.headers["Location"])
        separator = "&" if "?" in location else "?"
        response = self._request(
            "PUT",
            f"{location}{separator}digest={digest}",
            data=data,
            headers={"Content-Type": "application/octet-stream"},
        )
        if response.status_code not in (201, 204):
            raise self._fail(response, f"pushing {digest} to {repository}")

    def _absolute(self, location: str) -> str:
        if location.startswith("http"):
            return location
        return self.base.rsplit("/v2", 1)[0] + location


def oci_layer(layer: dict[str, Any]) -> dict[str, Any]:
    """A layer descriptor in OCI terms (Docker's media types for the same bytes renamed)."""
    media = layer.get("mediaType", "")
    if media.startswith("application/vnd.docker.image.rootfs"):
        media = "application/vnd.oci.image.layer.v1.tar" + ("+gzip" if "gzip" in media else "")
    return {"mediaType": media, "digest": layer["digest"], "size": layer["size"]}
