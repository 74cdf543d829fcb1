"""A damaged run store does not keep the extension from loading: /config says what is wrong,
the run routes answer 503 with it, and the rest (compile) works (issue 16)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.notebooks import notebook, write

from .conftest import Api


@pytest.fixture
def cellpipe_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "cellpipe-home"
    home.mkdir()
    (home / "runs.sqlite").write_bytes(b"not a database at all\n" * 100)
    monkeypatch.setenv("CELLPIPE_HOME", str(home))
    return home


async def test_the_extension_loads_and_says_the_store_is_damaged(
    api: Api, cellpipe_home: Path, root: Path
) -> None:
    store = cellpipe_home / "runs.sqlite"
    code, config = await api("GET", "config")
    assert code == 200
    assert str(store) in config["store_error"] and "move it aside" in config["store_error"]

    code, answer = await api("GET", "runs")
    assert code == 503 and answer["reason"] == "store_unavailable"
    assert str(store) in answer["message"]

    write(root / "nb.ipynb", notebook((["step:a"], "x = 1")))
    code, answer = await api("POST", "runs", body={"path": "nb.ipynb"})
    assert code == 503 and str(store) in answer["message"]
    code, _ = await api("POST", "compile", body={"path": "nb.ipynb"})
    assert code == 200
    assert store.read_bytes() == b"not a database at all\n" * 100
