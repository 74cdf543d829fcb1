"""Fixtures shared by every test directory.

The real container infrastructure (podman's Docker API, registries, the Python base image) lives
in tests/containers.py; importing its fixtures here makes them visible everywhere under tests/.
"""

from __future__ import annotations

import pytest

from tests.containers import (
    auth_registry,
    base_image,
    container_engine,
    extend_timeout_for_cold_base_image,
    readonly_registry,
    registry,
    registry_ports,
)

__all__ = [
    "auth_registry",
    "base_image",
    "container_engine",
    "readonly_registry",
    "registry",
    "registry_ports",
]


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    extend_timeout_for_cold_base_image(items)
