"""Requests with a field of the wrong type or out of range are a 400 naming the field, never a
500; /config shows no credentials (issue 16)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cellpipe.launcher.store import open_store
from tests.notebooks import notebook, write

from .conftest import API, Api

QUICK = notebook((["parameters"], "n = 2\nscale = 1.5"), (["step:a"], "x = n * scale"))

# Values of every JSON type, and numbers JSON allows but no field takes (Python's json reads
# NaN and Infinity too, so a client can send them).
WRONG: dict[str, str] = {
    "list": '["local"]',
    "object": '{"a": 1}',
    "huge": "1e308",
    "negative": "-1",
    "fraction": "0.5",
    "true": "true",
    "text": '"many"',
    "nan": "NaN",
    "infinity": "Infinity",
    "zero": "0",
}

# Each field a route reads, with the kinds of WRONG it takes (the others must be refused).
TAKES: dict[str, set[str]] = {
    "path": {"text"},
    "content": {"object"},
    "engine": {"text"},
    "parameters": {"object"},
    "use_cache": {"true"},
    "require_gpus": {"true"},
    "registry": {"text"},
    "base_image": {"text"},
    "yaml": {"true"},
    "builder": {"text"},
    "base": {"text"},
    "max_file_size": {"fraction", "zero"},
    "kfp_host": {"text"},
    "gpus": {"object"},
    "image": {"text"},
    "namespace": {"text"},
    "experiment": {"text"},
    "step": {"text"},
    "workers": set(),
    "gpus_per_worker": {"zero"},
    "gpu_type": {"text"},
    "pvc": {"text"},
    "storage_size": {"text"},
    "storage_class": {"text"},
    "runtime": {"text"},
}
ROUTE_FIELDS = {
    "compile": ["path", "content", "registry", "base_image", "yaml"],
    "runs": [
        "path",
        "content",
        "engine",
        "parameters",
        "use_cache",
        "require_gpus",
        "registry",
        "base_image",
        "builder",
        "image",
        "kfp_host",
        "gpus",
        "namespace",
        "experiment",
        "step",
        "workers",
        "gpus_per_worker",
        "gpu_type",
        "pvc",
        "storage_size",
        "storage_class",
        "runtime",
    ],
    "builds": ["path", "content", "registry", "builder", "base", "max_file_size"],
}


async def post_raw(jp_fetch: Any, route: str, body: str) -> tuple[int, Any]:
    response = await jp_fetch(API, route, method="POST", body=body, raise_error=False)
    return response.code, json.loads(response.body or b"null")


async def test_every_field_of_the_wrong_type_is_a_400_naming_it(jp_fetch: Any, root: Path) -> None:
    write(root / "quick.ipynb", QUICK)
    problems = []
    for route, fields in ROUTE_FIELDS.items():
        for field in fields:
            for kind, value in WRONG.items():
                if kind in TAKES[field]:
                    continue
                others = '"path": "quick.ipynb", ' if field != "path" else ""
                body = f'{{{others}"{field}": {value}}}'
                code, answer = await post_raw(jp_fetch, route, body)
                if code != 400 or f"'{field}'" not in (answer or {}).get("message", ""):
                    problems.append((route, field, kind, code, answer))
    assert problems == []


async def test_parameters_of_any_type_are_refused_or_taken_never_a_fault(
    jp_fetch: Any, root: Path
) -> None:
    write(root / "quick.ipynb", QUICK)
    for name in ("n", "scale"):
        for kind, value in WRONG.items():
            body = (
                f'{{"path": "quick.ipynb", "engine": "local", "parameters": {{"{name}": {value}}}}}'
            )
            code, answer = await post_raw(jp_fetch, "runs", body)
            assert code in (202, 400), (name, kind, code, answer)
            if code == 400:
                assert name in answer["message"], answer


@pytest.fixture
def cellpipe_config() -> dict[str, Any]:
    return {"kfp_host": "https://alice:pa55word@kubeflow.example.com:8443/pipeline"}


async def test_config_shows_the_kfp_host_without_credentials(api: Api) -> None:
    code, config = await api("GET", "config")
    assert code == 200
    assert config["kfp_host"] == "https://kubeflow.example.com:8443/pipeline"
    assert "pa55word" not in json.dumps(config) and "alice" not in json.dumps(config)


async def test_a_run_shows_its_kfp_address_without_credentials(
    api: Api, root: Path, cellpipe_home: Path
) -> None:
    write(root / "quick.ipynb", QUICK)
    store = open_store(cellpipe_home)
    record = store.create(
        str(root / "quick.ipynb"),
        "quick",
        "kfp",
        {},
        [("a", "a")],
        cellpipe_home / "runs",
        external={"api": "https://alice:pa55word@kubeflow.example.com", "run_id": "r1"},
        links={"kfp_ui": "https://alice:pa55word@kubeflow.example.com/#/runs/details/r1"},
    )
    record.status = "Succeeded"
    store.update_run(record)

    for answer in (await api("GET", "runs", record.run_id), await api("GET", "runs")):
        assert answer[0] == 200
        assert "pa55word" not in json.dumps(answer[1]) and "alice" not in json.dumps(answer[1])
    _, run = await api("GET", "runs", record.run_id)
    assert run["links"]["kfp_ui"] == "https://kubeflow.example.com/#/runs/details/r1"
