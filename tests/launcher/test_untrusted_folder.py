"""A notebook and its folder may come from anyone (a cloned repository): what they can make
`cellpipe build` and `cellpipe requirements` do, and what they cannot (issue 16)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from cellpipe.converter import CompileOptions, build_pipeline, read_notebook
from cellpipe.launcher.images import WORKDIR, plan_image
from cellpipe.launcher.requirements import RequirementError, find_requirements
from tests.notebooks import notebook, write


def found_for(folder: Path, *cells: Any, requirements: Any = None) -> Any:
    metadata = {"cellpipe": {"requirements": requirements}} if requirements is not None else {}
    path = write(folder / "nb.ipynb", notebook(*cells, metadata=metadata))
    raw = read_notebook(path)
    pipeline = build_pipeline(raw, str(path), CompileOptions(local_only=True))
    return find_requirements(pipeline, raw, path), pipeline, path


# --- metadata.cellpipe.requirements: requirement specifiers, nothing else ---------------------

REFUSED = {
    "--index-url http://evil.example.com/simple": "pip option",
    "--trusted-host evil.example.com": "pip option",
    "-r /etc/passwd": "pip option",
    "-e git+https://example.com/x.git#egg=x": "pip option",
    "numpy\n--extra-index-url http://evil.example.com": "line break",
    "numpy --index-url http://evil.example.com": "not a requirement specifier",
    "https://example.com/pkg-1.0-py3-none-any.whl": "not a requirement specifier",
    "./local/package": "not a requirement specifier",
    "pkg @ file:///home/me/.ssh": "URL",
    "pkg @ http://example.com/pkg.whl": "URL",
    "": "empty",
}


@pytest.mark.parametrize("line", list(REFUSED))
def test_a_metadata_requirement_that_is_not_a_specifier_is_an_error_naming_it(
    tmp_path: Path, line: str
) -> None:
    with pytest.raises(RequirementError) as refused:
        found_for(tmp_path, (["step:a"], "x = 1"), requirements=["pandas>=2", line])
    message = str(refused.value)
    assert message.startswith("metadata.cellpipe.requirements[2] "), message
    assert repr(line) in message and REFUSED[line] in message


def test_requirements_must_be_a_list_of_text(tmp_path: Path) -> None:
    for given in ("numpy", [1], {"numpy": "1"}):
        with pytest.raises(RequirementError, match=r"metadata\.cellpipe\.requirements"):
            found_for(tmp_path, (["step:a"], "x = 1"), requirements=given)


def test_specifiers_with_extras_markers_and_https_urls_are_taken(tmp_path: Path) -> None:
    taken = [
        "requests[socks]>=2,<3",
        'tomli>=1; python_version < "3.11"',
        "pkg @ https://example.com/pkg-1.0-py3-none-any.whl",
    ]
    found, _, _ = found_for(tmp_path, (["step:a"], "x = 1"), requirements=taken)
    assert [r.spec for r in found.requirements][:3] == taken


def test_requirements_txt_lines_are_specifiers_too(tmp_path: Path) -> None:
    (tmp_path / "requirements.txt").write_text("numpy\npkg @ file:///etc\n")
    with pytest.raises(RequirementError) as refused:
        found_for(tmp_path, (["step:a"], "x = 1"))
    assert str(refused.value).startswith("requirements.txt line 2 'pkg @ file:///etc'")


def test_a_pip_line_word_that_is_no_specifier_is_not_carried(tmp_path: Path) -> None:
    found, _, _ = found_for(
        tmp_path, (["step:a"], "!pip install tqdm git+https://example.com/x.git\nx = 1")
    )
    specs = [r.spec for r in found.requirements]
    assert "tqdm" in specs and not any("example.com" in s for s in specs)
    assert any("'git+https://example.com/x.git'" in w for w in found.warnings)


# --- local modules: confined to the notebook's folder ------------------------------------------


def test_a_local_module_that_links_out_of_the_folder_is_an_error_naming_it(
    tmp_path: Path,
) -> None:
    secret = tmp_path / "outside" / "id_rsa"
    secret.parent.mkdir()
    secret.write_text("PRIVATE KEY\n")
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "helper.py").symlink_to(secret)

    with pytest.raises(RequirementError) as refused:
        found_for(folder, (["step:a"], "import helper\nx = 1"))
    assert "helper.py" in str(refused.value) and "outside the notebook's folder" in str(
        refused.value
    )


def test_a_local_package_with_a_file_linking_out_is_an_error_naming_the_file(
    tmp_path: Path,
) -> None:
    secret = tmp_path / "secret.py"
    secret.write_text("TOKEN = 'x'\n")
    folder = tmp_path / "project"
    (folder / "tools").mkdir(parents=True)
    (folder / "tools" / "__init__.py").write_text("")
    (folder / "tools" / "keys.py").symlink_to(secret)

    with pytest.raises(RequirementError, match=r"tools/keys\.py"):
        found_for(folder, (["step:a"], "import tools\nx = 1"))


def test_links_inside_the_folder_are_baked_as_the_file_they_name(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "helper_impl.py").write_text("VALUE = 2\n")
    (tmp_path / "helper.py").symlink_to(tmp_path / "real" / "helper_impl.py")
    found, pipeline, path = found_for(tmp_path, (["step:a"], "import helper\nx = 1"))
    plan = plan_image(pipeline, path, found, "python:3.11-slim", None)
    assert plan.code_files[f"{WORKDIR}/helper.py"] == b"VALUE = 2\n"


# --- the requirements probe runs nothing of the notebook's folder ------------------------------


def test_modules_in_the_notebooks_folder_do_not_run_during_the_probe(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    for name in ("json", "importlib", "sys", "sitecustomize", "numpy"):
        (tmp_path / f"{name}.py").write_text(f"open({str(marker)!r}, 'a').write('{name}\\n')\n")
    cwd = os.getcwd()
    os.chdir(tmp_path)  # as `cellpipe build nb.ipynb` run in the notebook's folder
    try:
        found, _, _ = found_for(tmp_path, (["step:a"], "import numpy\nimport json\nx = 1"))
    finally:
        os.chdir(cwd)
    assert not marker.exists(), marker.read_text()
    # numpy beside the notebook is a local module (baked), not the installed one
    assert [m.path for m in found.local_modules] == ["numpy.py"]
    assert json.loads(json.dumps(found.to_json()))["python_version"]
