"""Cell source as a step runs it: IPython-only syntax dealt with, then parsed.

A step runs without a Jupyter kernel, so magics and shell escapes cannot run there. Harmless
ones (`%matplotlib inline`, `%%time`) are left out with a warning; a cell that is not Python
(`%%bash`, `%%writefile`) is an error that says to tag it `skip` or rewrite it.
"""

from __future__ import annotations

import ast
import re
import shlex
import warnings
from dataclasses import dataclass, field

from .limits import MAX_SYNTAX_DEPTH, too_deep

_LINE_MAGIC = re.compile(r"^(\s*)(?:[A-Za-z_][\w.]*\s*=\s*)?[%!]")
# Cell magics whose body is plain Python, run the same with or without them.
_TRANSPARENT_CELL_MAGICS = {"time", "capture", "timeit", "prun"}


@dataclass
class CellSource:
    code: str
    tree: ast.Module | None = None
    warnings: list[str] = field(default_factory=list)
    error: str | None = None
    requirements: list[str] = field(default_factory=list)  # from !pip / %pip install lines


def prepare(source: str) -> CellSource:
    """Turn a cell's text into the Python a step runs, and its syntax tree."""
    result = CellSource(code=source)
    lines = source.split("\n")
    first = lines[0].strip() if lines else ""
    if first.startswith("%%"):
        magic = first[2:].split(None, 1)[0] if len(first) > 2 else ""
        if magic not in _TRANSPARENT_CELL_MAGICS:
            result.error = (
                f"the cell magic %%{magic} is not Python and cannot run in a pipeline step; "
                "tag the cell 'skip' or rewrite it in Python"
            )
            return result
        result.warnings.append(f"%%{magic} is left out: a pipeline step runs without IPython")
        lines = lines[1:]
    kept = []
    for line in lines:
        match = _LINE_MAGIC.match(line)
        if match and not _is_python_line(line):
            installs = pip_install_arguments(line)
            if installs is not None:
                result.requirements.extend(installs.requirements)
                if installs.options:
                    result.warnings.append(
                        f"{line.strip()!r}: the pip options {' '.join(installs.options)} are not "
                        "carried into the pipeline; list packages in requirements.txt instead"
                    )
            elif not _CELLPIPE_OWN_MAGIC.match(line):  # cellpipe's own control lines: no news
                result.warnings.append(
                    f"{line.strip()!r} is left out: magics and shell commands do not run in a "
                    "pipeline step"
                )
            kept.append(f"{match.group(1)}pass  # cellpipe: {line.strip()}")
        else:
            kept.append(line)
    result.code = "\n".join(kept)
    try:
        with warnings.catch_warnings():
            # `"\d"` in a cell is a SyntaxWarning, not an error: Jupyter runs the cell, so the
            # compile reads it too, even where warnings are errors (`python -W error`, pytest)
            warnings.simplefilter("ignore")
            tree = ast.parse(result.code)
    except SyntaxError as exc:
        result.error = (
            f"syntax error on line {exc.lineno}: {exc.msg}; fix the cell or tag it 'skip'"
        )
        return result
    except (RecursionError, MemoryError):  # the parser's own stack: nesting beyond its reach
        result.error = TOO_DEEP.format(where="the cell")
        return result
    deep_line = too_deep(tree)
    if deep_line is not None:
        result.error = TOO_DEEP.format(where=f"line {deep_line}")
        return result
    result.tree = tree
    return result


TOO_DEEP = (
    "{where} nests an expression or statement more than "
    f"{MAX_SYNTAX_DEPTH} levels deep (a long chain like a + b + c + ... is one level per "
    "term), more than cellpipe analyses; split it into smaller statements (sum a list, "
    "build a string with join)"
)


# `%load_ext cellpipe` and `%cellpipe ...` drive cellpipe from the notebook; a step leaves them
# out as it leaves out every magic, without a warning about cellpipe itself.
_CELLPIPE_OWN_MAGIC = re.compile(r"^\s*%(?:(?:re)?load_ext\s+cellpipe\s*$|cellpipe(?:\s|$))")
_PIP_INSTALL = re.compile(r"^\s*[!%]\s*(?:python3?\s+-m\s+)?pip3?\s+install\s+(.*)$")


@dataclass
class PipInstall:
    requirements: list[str]
    options: list[str]  # pip options other than quiet/upgrade, which a step cannot honour


def pip_install_arguments(line: str) -> PipInstall | None:
    """The requirements of a `!pip install X Y` or `%pip install X` line."""
    match = _PIP_INSTALL.match(line)
    if match is None:
        return None
    try:
        words = shlex.split(match.group(1))
    except ValueError:
        return None
    found = PipInstall([], [])
    takes_value = False
    for word in words:
        if takes_value:
            found.options[-1] += f" {word}"
            takes_value = False
        elif word.startswith("-"):
            if word not in _HARMLESS_PIP_FLAGS:
                found.options.append(word)
            # `-r FILE`, `-i URL`, `--index-url URL`... take the next word as their value.
            takes_value = word in _PIP_OPTIONS_WITH_VALUE
        else:
            found.requirements.append(word)
    return found


_HARMLESS_PIP_FLAGS = frozenset({"-q", "--quiet", "-U", "--upgrade", "--no-cache-dir", "--user"})


_PIP_OPTIONS_WITH_VALUE = frozenset(
    {
        "-r",
        "--requirement",
        "-c",
        "--constraint",
        "-i",
        "--index-url",
        "--extra-index-url",
        "-f",
        "--find-links",
        "-t",
        "--target",
        "--prefix",
        "--root",
        "-e",
        "--editable",
    }
)


def _is_python_line(line: str) -> bool:
    # `x = a % b` or `print(a != b)` start with no magic; only a leading % or ! after an
    # optional `name =` is IPython syntax, and only if the line is not valid Python by itself.
    try:
        ast.parse(line.strip())
    except SyntaxError:
        return False
    return True
