"""The widgets are shown in a kernel: the magics' shell and notebook fixtures serve them too."""

from tests.magics.conftest import shell, steps_notebook

__all__ = ["shell", "steps_notebook"]
