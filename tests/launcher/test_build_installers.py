"""Which installer fills the dependencies layer (launcher/installers.py): uv when it can, with
pip's own configuration, so that it installs the versions pip would; else pip, saying why."""

from __future__ import annotations

import base64
import hashlib
import os
import zipfile
from pathlib import Path

import pytest

from cellpipe.launcher import installers
from cellpipe.launcher.builders import BuildError
from cellpipe.launcher.installers import (
    NotForUv,
    chosen_installer,
    install_requirements,
    pip_settings,
    uv_command,
)

needs_uv = pytest.mark.skipif(installers.find_uv() is None, reason="uv is not installed")


def make_wheel(folder: Path, name: str, version: str, requires: tuple[str, ...] = ()) -> None:
    """A pure-Python wheel holding one module that records its version."""
    dist = f"{name}-{version}.dist-info"
    files = {
        f"{name}.py": f"VERSION = {version!r}\n",
        f"{dist}/METADATA": "Metadata-Version: 2.1\n"
        f"Name: {name}\nVersion: {version}\n" + "".join(f"Requires-Dist: {r}\n" for r in requires),
        f"{dist}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
        "Tag: py3-none-any\n",
    }
    record = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=")
        record.append(f"{path},sha256={digest.decode()},{len(text.encode())}")
    files[f"{dist}/RECORD"] = "\n".join([*record, f"{dist}/RECORD,,"]) + "\n"
    folder.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(folder / f"{name}-{version}-py3-none-any.whl", "w") as archive:
        for path, text in files.items():
            archive.writestr(path, text)


@pytest.fixture
def local_index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """pip configured by a pip.conf of its own (and no PIP_* variables): no index, two
    find-links folders; the best version of `alpha` is in the second one."""
    first, second = tmp_path / "first", tmp_path / "second"
    make_wheel(first, "alpha", "1.0", ("beta<2",))
    make_wheel(second, "alpha", "2.0", ("beta<2",))
    make_wheel(second, "alpha", "3.0rc1", ("beta",))  # a pre-release: neither takes it
    for version in ("1.0", "1.5", "2.0"):
        make_wheel(first, "beta", version)
    make_wheel(second, "gamma", "0.1", ("alpha>=2",))
    conf = tmp_path / "pip.conf"
    conf.write_text(f"[global]\nno-index = true\nfind-links =\n    {first}\n    {second}\n")
    for variable in list(os.environ):
        if variable.startswith(("PIP_", "UV_")):
            monkeypatch.delenv(variable)
    monkeypatch.setenv("PIP_CONFIG_FILE", str(conf))
    monkeypatch.setenv("PIP_DISABLE_PIP_VERSION_CHECK", "1")
    return first, second


def installed(target: Path) -> dict[str, str]:
    return {
        path.name.removesuffix(".dist-info").split("-")[0]: path.name.removesuffix(
            ".dist-info"
        ).split("-")[1]
        for path in target.glob("*.dist-info")
    }


def test_pip_settings_map_to_uv_arguments() -> None:
    command = uv_command(
        {
            "index-url": "https://mirror.example/simple",
            "extra-index-url": "file:///opt/a/simple file:///opt/b/simple",
            "find-links": "/opt/wheels",
            "trusted-host": "mirror.example",
            "no-index": "false",
            "pre": "yes",
            "cert": "/etc/ssl/certs/ca.crt",
            "default-timeout": "180",
            "disable-pip-version-check": "1",
        }
    )
    assert command.arguments == [
        "--index-strategy",
        "unsafe-best-match",
        "--extra-index-url",
        "file:///opt/a/simple",
        "--extra-index-url",
        "file:///opt/b/simple",
        "--find-links",
        "/opt/wheels",
        "--index-url",
        "https://mirror.example/simple",
        "--prerelease",
        "allow",
        "--allow-insecure-host",
        "mirror.example",
    ]
    assert command.env == {"SSL_CERT_FILE": "/etc/ssl/certs/ca.crt"}


@pytest.mark.parametrize("setting", ["only-binary", "constraint", "no-binary", "prefer-binary"])
def test_a_pip_setting_uv_cannot_honour_is_named(setting: str) -> None:
    with pytest.raises(NotForUv, match=setting):
        uv_command({setting: ":all:"})


def test_pip_settings_are_read_as_pip_orders_them(
    local_index: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    conf = tmp_path / "pip.conf"
    conf.write_text(
        "[global]\nindex-url = https://global.example/simple\ntimeout = 5\n"
        "[install]\nindex-url = https://install.example/simple\n"
        "[download]\nindex-url = https://download.example/simple\n"
    )
    assert pip_settings()["index-url"] == "https://install.example/simple"
    monkeypatch.setenv("PIP_INDEX_URL", "https://variable.example/simple")
    assert pip_settings()["index-url"] == "https://variable.example/simple"
    assert pip_settings()["timeout"] == "5"


def test_an_unknown_installer_is_a_build_error() -> None:
    assert chosen_installer({}) == "auto"
    assert chosen_installer({"CELLPIPE_INSTALLER": "pip"}) == "pip"
    with pytest.raises(BuildError, match="CELLPIPE_INSTALLER='conda': choose one of auto, uv"):
        chosen_installer({"CELLPIPE_INSTALLER": "conda"})


def install(tmp_path: Path, name: str, lines: list[str]) -> tuple[str, dict[str, str], list[str]]:
    requirements = tmp_path / f"{name}.txt"
    requirements.write_text("\n".join(lines) + "\n")
    said: list[str] = []
    target = tmp_path / name
    used = install_requirements(requirements, target, said.append, len(lines))
    return used, installed(target), said


@needs_uv
def test_uv_installs_the_versions_pip_installs(
    local_index: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lines = ["alpha", "gamma"]
    monkeypatch.setenv("CELLPIPE_INSTALLER", "uv")
    used, by_uv, said = install(tmp_path, "uv", lines)
    assert used == "uv" and said[0].startswith("installing 2 requirements with uv")
    monkeypatch.setenv("CELLPIPE_INSTALLER", "pip")
    used, by_pip, said = install(tmp_path, "pip", lines)
    assert used == "pip" and said == ["installing 2 requirements with pip"]
    # the best version across both folders (pip's rule), no pre-release, beta held below 2
    assert by_uv == by_pip == {"alpha": "2.0", "beta": "1.5", "gamma": "0.1"}
    for target in ("uv", "pip"):  # nothing for this machine's interpreter, no bytecode
        assert not (tmp_path / target / "bin").exists()
        assert not (tmp_path / target / installers.UV_LOCK).exists()
        assert not list((tmp_path / target).rglob("*.pyc"))


def test_without_uv_pip_installs_and_says_why(
    local_index: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(installers, "find_uv", lambda: None)
    used, versions, said = install(tmp_path, "auto", ["alpha<2"])
    assert used == "pip" and versions == {"alpha": "1.0", "beta": "1.5"}
    assert said == [
        "installing 1 requirements with pip (uv is not installed (pip install uv); trying pip)"
    ]
    monkeypatch.setenv("CELLPIPE_INSTALLER", "uv")
    with pytest.raises(BuildError, match="CELLPIPE_INSTALLER=uv, but uv is not installed"):
        install(tmp_path, "uv", ["alpha"])


@needs_uv
def test_a_pip_setting_uv_cannot_honour_makes_pip_install(
    local_index: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PIP_ONLY_BINARY", ":all:")
    used, versions, said = install(tmp_path, "auto", ["alpha"])
    assert used == "pip" and versions["alpha"] == "2.0"
    assert "pip's setting 'only-binary' has no uv counterpart; trying pip" in said[0]


@needs_uv
@pytest.mark.parametrize("choice", ["auto", "uv", "pip"])
def test_a_requirement_that_cannot_be_installed_is_a_build_error_naming_it(
    local_index: tuple[Path, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    choice: str,
) -> None:
    monkeypatch.setenv("CELLPIPE_INSTALLER", choice)
    with pytest.raises(BuildError) as failed:
        install(tmp_path, choice, ["alpha", "no-such-distribution==1.0"])
    message = str(failed.value)
    assert message.startswith("installing the requirements failed:")
    assert "no-such-distribution" in message
    assert "`cellpipe requirements NOTEBOOK` shows where each came from" in message
