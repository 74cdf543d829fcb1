"""POST /compile: saved notebooks by path, unsaved edits by content, never outside the root."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.notebooks import notebook, write

from .conftest import Api

TWO_STEPS = notebook(
    (["parameters"], "k = 2"),
    (["step:load"], "x = k"),
    (["step:train", "gpu:1:A100"], "y = x + 1"),
    (["metrics"], "y"),
)

CYCLE = notebook(
    (["step:a", "after:c"], "x = 1"),
    (["step:b", "after:a"], "y = 2"),
    (["step:c", "after:b"], "z = 3"),
)


@pytest.fixture
def cellpipe_config() -> dict[str, Any]:
    return {"registry": "registry.example.com/team", "gpu_label": "example.com/gpu-type"}


async def test_compile_a_saved_notebook_by_its_path(api: Api, root: Path) -> None:
    (root / "work").mkdir()
    write(root / "work" / "train.ipynb", TWO_STEPS)

    code, result = await api("POST", "compile", body={"path": "work/train.ipynb"})

    assert code == 200, result
    assert result["pipeline"] == "train"
    assert [s["name"] for s in result["steps"]] == ["load", "train"]
    assert result["steps"][1]["receives"] == ["x"]
    assert result["parameters"] == {"k": 2}
    assert result["errors"] == []
    # the configured registry names the image (no "no registry" warning)
    assert result["image"].startswith("registry.example.com/team/train:")
    assert not any("registry" in w["message"] for w in result["warnings"])


async def test_compile_unsaved_edits_sent_as_content(api: Api, root: Path) -> None:
    # Given a saved notebook and edits in the browser that are not saved yet
    write(root / "n.ipynb", TWO_STEPS)
    edited = notebook((["step:only"], "a = 1"))

    code, result = await api("POST", "compile", body={"path": "n.ipynb", "content": edited})

    assert code == 200, result
    assert [s["name"] for s in result["steps"]] == ["only"]
    assert result["pipeline"] == "n"


async def test_explicit_options_beat_the_notebook_which_beats_configuration(
    api: Api, root: Path
) -> None:
    own = notebook((["step:a"], "x = 1"), metadata={"cellpipe": {"registry": "mine.example/r"}})
    write(root / "own.ipynb", own)

    _, from_notebook = await api("POST", "compile", body={"path": "own.ipynb"})
    _, explicit = await api(
        "POST", "compile", body={"path": "own.ipynb", "registry": "flag.example/x"}
    )

    assert from_notebook["image"].startswith("mine.example/r/own:")
    assert explicit["image"].startswith("flag.example/x/own:")


async def test_compile_can_return_the_kfp_yaml(api: Api, root: Path) -> None:
    write(root / "train.ipynb", TWO_STEPS)

    code, result = await api("POST", "compile", body={"path": "train.ipynb", "yaml": True})

    assert code == 200, result
    assert "pipelineInfo:" in result["yaml"]
    assert "example.com/gpu-type" in result["yaml"]  # the configured GPU label


async def test_a_cycle_is_400_naming_the_steps_with_the_cli_message(api: Api, root: Path) -> None:
    write(root / "cycle.ipynb", CYCLE)

    code, body = await api("POST", "compile", body={"path": "cycle.ipynb"})

    assert code == 400
    assert body["reason"] == "notebook_errors"
    assert "the after: tags make a cycle: " in body["message"]
    assert all(f"'{name}'" in body["message"] for name in "abc")
    assert body["message"].startswith("cycle.ipynb: cell ")
    (error,) = body["errors"]
    assert error["message"] in body["message"]
    assert set(error) == {"message", "cell_index", "cell_id", "step"}
    assert error["cell_id"] == f"cell-{error['cell_index']}"


async def test_the_cli_prints_the_same_words_for_the_cycle(api: Api, root: Path) -> None:
    write(root / "cycle.ipynb", CYCLE)
    _, body = await api("POST", "compile", body={"path": "cycle.ipynb"})
    cli = subprocess.run(
        [sys.executable, "-m", "cellpipe.cli", "compile", "cycle.ipynb"],
        capture_output=True,
        text=True,
        cwd=root,
        stdin=subprocess.DEVNULL,
        timeout=60,
    )
    assert cli.returncode == 2
    assert f"cellpipe: error: {body['message']}" in cli.stderr


@pytest.mark.parametrize(
    "path",
    [
        "../../etc/passwd",
        "../outside.ipynb",
        "work/../../outside.ipynb",
        "/../outside.ipynb",
    ],
)
async def test_paths_that_climb_out_of_the_root_are_refused(
    api: Api, root: Path, path: str
) -> None:
    write(root.parent / "outside.ipynb", TWO_STEPS)

    code, body = await api("POST", "compile", body={"path": path})

    assert code == 403
    assert body["reason"] == "outside_root"
    assert "outside the server's root" in body["message"]


async def test_an_absolute_path_outside_the_root_is_not_served(api: Api, root: Path) -> None:
    # Given a notebook outside the root, named by its absolute file path
    outside = write(root.parent / "outside.ipynb", TWO_STEPS)

    # When a client asks for it (API paths are relative to the root, '/' being the root)
    for path in (str(outside), "/etc/passwd"):
        code, body = await api("POST", "compile", body={"path": path})
        # Then it is not found inside the root
        assert code == 404, (path, body)
        assert body["reason"] == "not_found"


async def test_a_symlink_out_of_the_root_is_refused(api: Api, root: Path) -> None:
    outside = write(root.parent / "outside.ipynb", TWO_STEPS)
    (root / "link.ipynb").symlink_to(outside)

    code, body = await api("POST", "compile", body={"path": "link.ipynb"})

    assert code == 403
    assert body["reason"] == "outside_root"


async def test_missing_hidden_and_unreadable_notebooks(api: Api, root: Path) -> None:
    (root / "broken.ipynb").write_text("{not json")
    (root / ".hidden").mkdir()
    write(root / ".hidden" / "n.ipynb", TWO_STEPS)

    missing = await api("POST", "compile", body={"path": "nope.ipynb"})
    hidden = await api("POST", "compile", body={"path": ".hidden/n.ipynb"})
    broken = await api("POST", "compile", body={"path": "broken.ipynb"})
    no_path = await api("POST", "compile", body={})
    not_object = await api("POST", "compile", body=["n.ipynb"])
    bad_content = await api("POST", "compile", body={"content": {"cells": "no"}})

    assert missing[0] == 404
    assert hidden[0] == 404
    assert broken == (
        400,
        {
            "message": "broken.ipynb: not a notebook: invalid JSON at line 1",
            "reason": "not_a_notebook",
        },
    )
    assert no_path[0] == 400 and no_path[1]["reason"] == "bad_path"
    assert not_object[0] == 400 and not_object[1]["reason"] == "bad_request"
    assert bad_content == (
        400,
        {
            "message": "notebook.ipynb: not a notebook: it has no list of cells",
            "reason": "not_a_notebook",
        },
    )
