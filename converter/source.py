"""A cell's source as a step runs it, and the Python the compiler analyses in its place.

A step runs its cells through IPython's own shell (runtime/shell.py), so a cell runs as it is
written: magics, `!` lines and cell magics run as in Jupyter. Only lines that drive cellpipe
itself (`%load_ext cellpipe`, `%cellpipe ...`; the `%%step` line is already an empty line, see
tags.split_step_line) and `!pip install` / `%pip install` lines (their requirements go into the
image) become `pass`, line for line.

The analysis reads Python: each IPython line becomes, on the same line, the Python that shows
what it does with names (`%time model.fit(X)` reads model and X, `files = !ls` sets files,
`!wget {url}` reads url, `%%capture out` sets out), so diagnostics name the cell's own lines. A
magic whose effect on names cannot be seen (`%run`, `%store`, a magic cellpipe does not know)
is a warning. IPython's own tokenizer finds the IPython lines of a cell that is not Python as
it stands: IPython is imported only then, never for a notebook without such lines.
"""

from __future__ import annotations

import ast
import importlib
import re
import shlex
import string
import tokenize
import warnings
from dataclasses import dataclass, field
from typing import Any

from .limits import MAX_SYNTAX_DEPTH, too_deep
from .name_shapes import looks_like_path


@dataclass
class CellSource:
    code: str  # what the step runs: the cell's IPython source
    analysis: str = ""  # the Python the analysis reads, line for line with `code`
    tree: ast.Module | None = None  # `analysis` parsed
    warnings: list[str] = field(default_factory=list)
    error: str | None = None
    requirements: list[str] = field(default_factory=list)  # from !pip / %pip install lines


def prepare(source: str) -> CellSource:
    """The code a step runs for a cell, and the syntax tree of its Python equivalent."""
    result = CellSource(code=source, analysis=source)
    parsed = _parse(source)
    if isinstance(parsed, _NotPython) and _MAYBE_IPYTHON.search(source):
        cell = _Lines(source)
        _read_ipython(cell, result)
        result.code, result.analysis = cell.texts()
        parsed = _parse(result.analysis)
    if isinstance(parsed, str):
        result.error = result.error or parsed
    elif result.error is None:
        result.tree = parsed
    return result


def python_tree(source: str) -> ast.Module | None:
    """The syntax tree of a cell's Python equivalent (its IPython lines read as prepare reads
    them), or None where the cell is not valid even so."""
    return prepare(source).tree


TOO_DEEP = (
    "{where} nests an expression or statement more than "
    f"{MAX_SYNTAX_DEPTH} levels deep (a long chain like a + b + c + ... is one level per "
    "term), more than cellpipe analyses; split it into smaller statements (sum a list, "
    "build a string with join)"
)


class _NotPython(str):
    """A syntax error's message: the text may still be IPython."""


def _parse(code: str) -> ast.Module | str:
    """The tree, or why there is none."""
    try:
        with warnings.catch_warnings():
            # `"\d"` in a cell is a SyntaxWarning, not an error: Jupyter runs the cell, so the
            # compile reads it too, even where warnings are errors (`python -W error`, pytest)
            warnings.simplefilter("ignore")
            tree = ast.parse(code)
    except SyntaxError as exc:
        return _NotPython(
            f"syntax error on line {exc.lineno}: {exc.msg}; fix the cell or tag it 'skip'"
        )
    except ValueError as exc:  # a NUL character, before Python 3.12
        return _NotPython(f"syntax error: {exc}; fix the cell or tag it 'skip'")
    except (RecursionError, MemoryError):  # the parser's own stack: nesting beyond its reach
        return TOO_DEEP.format(where="the cell")
    deep_line = too_deep(tree)
    if deep_line is not None:
        return TOO_DEEP.format(where=f"line {deep_line}")
    return tree


# Where a cell may hold IPython syntax (a gate before IPython's tokenizer looks): an escape
# first on a line (% ! ? , ; /), `NAME = %magic` or `NAME = !cmd`, or help (`obj?`) last.
_MAYBE_IPYTHON = re.compile(r"^[ \t]*[%!?,;/]|=[ \t]*[%!]|\?[ \t]*$", re.MULTILINE)


class _Lines:
    """A cell as lines, twice: what the step runs and what the analysis reads. Each keeps its
    line break, so that each stays line for line with the cell."""

    def __init__(self, source: str) -> None:
        parts = source.split("\n")
        self.run = [part + "\n" for part in parts[:-1]] + [parts[-1]]
        self.analysis = list(self.run)

    def texts(self) -> tuple[str, str]:
        return "".join(self.run), "".join(self.analysis)

    def replace(self, first: int, last: int, run: str | None, analysis: str) -> None:
        """Lines first..last (a line continued with backslashes) become one line and empty
        lines; `run` None: the step runs them as written."""
        for lines, text in ((self.analysis, analysis), (self.run, run)):
            if text is None:
                continue
            for index in range(first, last + 1):
                end = "\n" if lines[index].endswith("\n") else ""
                lines[index] = (text if index == first else "") + end


def _read_ipython(cell: _Lines, result: CellSource) -> None:
    first = next((i for i, line in enumerate(cell.analysis) if line.strip()), None)
    if first is None:
        return
    body: int | None = 0
    if cell.analysis[first].lstrip().startswith("%%"):
        body = _cell_magic(cell, first, result)
    if body is not None:
        _escaped_lines(cell, body, result)


# --- cell magics --------------------------------------------------------------------------------

# The body is IPython code run in the notebook's namespace: analysed as Python.
_PYTHON_BODY = frozenset({"time", "timeit", "prun", "capture", "debug"})
# The body is shell commands (their words may name files); `--out`/`--err`/`--proc` set names.
_SHELL_BODY = frozenset({"bash", "sh", "shell", "!", "sx", "system"})
_SCRIPTS = frozenset(
    {"bash", "sh", "script", "perl", "ruby", "python", "python2", "python3", "pypy"}
)
# The body is text that sets no name: shown (HTML, Markdown...) or run in another process.
_OTHER_BODY = frozenset(
    {"html", "HTML", "svg", "SVG", "javascript", "js", "latex", "markdown", "writefile", "file"}
    | _SCRIPTS
)
# Magics that run Python code given on their line, with their options (IPython's getopt
# specs: a letter followed by `:` takes a value; %time takes none).
_CODE_OPTIONS = {"time": None, "timeit": "n:r:tcp:qo", "prun": "D:l:rs:T:q"}
# The script magics' options that name a variable they set.
_SCRIPT_NAMES = ("--out", "--err", "--proc")


def _cell_magic(cell: _Lines, first: int, result: CellSource) -> int | None:
    """Reads the cell magic on line `first`; where the body's IPython lines start, or None
    where the body is not Python."""
    header = cell.analysis[first].strip()
    name, _, args = header[2:].partition(" ")
    number = first + 1
    if name in _PYTHON_BODY:
        line = "pass"
        if name == "timeit":
            line = _strip_options(args, _CODE_OPTIONS["timeit"]).strip() or "pass"  # setup code
        elif name == "capture":
            target = [w for w in args.split() if not w.startswith("-")]
            if target and target[-1].isidentifier():
                line = f"{target[-1]} = None"
        cell.replace(first, first, None, line)
        return first + 1
    words = _words(args)
    reads = _expansions(args)
    sets: list[str] = []
    if name in ("writefile", "file"):
        files = [w for w in words if not w.startswith("-")]
        mode = "a" if "-a" in words or "--append" in words else "w"
        if files and not _expands(files[0]):
            reads.append(f"open({files[0]!r}, {mode!r})")
    elif name in _SCRIPTS:
        for option, value in _option_values(words, _SCRIPT_NAMES):
            if value.isidentifier():
                sets.append(f"{value} = {'None' if option == '--proc' else repr('')}")
        if "--bg" in words:
            result.warnings.append(
                f"line {number}: %%{name} --bg runs the script in the background, and the step "
                "may end before it does; run it without --bg"
            )
    elif name not in _SHELL_BODY and name not in _OTHER_BODY:
        result.warnings.append(_unknown(number, f"%%{name}", "the cell"))
    line = "; ".join([*sets, *([f"({', '.join(reads)},)"] if reads else [])]) or "pass"
    cell.replace(first, first, None, line)
    for index in range(first + 1, len(cell.analysis)):
        shell = _shell_parts(cell.analysis[index], expand=False) if name in _SHELL_BODY else []
        cell.replace(index, index, None, f"({', '.join(shell)},)" if shell else "")
    return None


# --- IPython lines: %magic, !command, NAME = %magic, NAME = !command, obj? ----------------------


def _escaped_lines(cell: _Lines, start: int, result: CellSource) -> None:
    """Each IPython line from line `start` on, found by IPython's own tokenizer, as the
    TransformerManager finds them: the first one, then the first one left, and so on."""
    text = "".join(cell.analysis[start:])
    if not _MAYBE_IPYTHON.search(text) or not isinstance(_parse(text), str):
        return
    ipython: Any = importlib.import_module("IPython.core.inputtransformer2")
    finders = (
        ipython.MagicAssign,
        ipython.SystemAssign,
        ipython.EscapedCommand,
        ipython.HelpEnd,
    )
    for _ in range(2 * len(cell.analysis) + 2):  # each round turns one line into Python
        try:
            tokens = ipython.make_tokens_by_line(cell.analysis[start:])
            found = [f for f in (finder.find(tokens) for finder in finders) if f is not None]
        except (SyntaxError, tokenize.TokenError, ValueError, IndexError):
            return  # IPython stops there too; the parse says where
        for candidate in sorted(found, key=lambda f: f.sortby()):
            if _rewrite(cell, start, candidate, ipython, result):
                break
        else:
            return


def _rewrite(cell: _Lines, start: int, found: Any, ipython: Any, result: CellSource) -> bool:
    line, column = start + found.start_line, found.start_col
    lines = cell.analysis
    if isinstance(found, ipython.HelpEnd):  # `obj?`: help, shown and nothing else
        last = start + found.q_line
        if not _HELP_END.search("".join(lines[line : last + 1])[column:].rstrip()):
            return False  # IPython leaves it as it is
        cell.replace(line, last, None, lines[line][:column] + "pass")
        return True
    last = ipython.find_end_of_continued_line(lines, line)
    text = ipython.assemble_continued_line(lines, (line, column), last)
    lead = lines[line][:column]  # the indentation, or `NAME = `
    assign = isinstance(found, (ipython.MagicAssign, ipython.SystemAssign))
    escape = text[:2] if text[:2] in ("!!", "??") else text[:1]
    content = text[len(escape) :]
    number = line + 1
    run: str | None = None
    if escape in ("!", "!!"):
        run, analysis = _shell_line(text, content, lead, assign, result)
    elif escape == "%":
        run, analysis = _magic_line(text, content, lead, assign, number, result)
    elif escape in (",", ";", "/"):  # autocall: `/f a b` is f(a, b)
        try:
            call = ipython.tr[escape](content)
        except SyntaxError:
            call = ""
        analysis = lead + (call if call and _is_python(call, number, escape, result) else "pass")
    else:  # `?obj`, `??obj`: help
        analysis = lead + "pass"
    cell.replace(line, last, run, analysis)
    return True


def _shell_line(
    text: str, command: str, lead: str, assign: bool, result: CellSource
) -> tuple[str | None, str]:
    if not assign:
        installs = pip_install_arguments(text)
        if installs is not None:
            return _installs(installs, text, lead, result)
    parts = _shell_parts(command, expand=True)
    if assign:  # `files = !ls`: a list of lines
        return None, f"{lead}[{', '.join(parts)}]"
    return None, f"{lead}({', '.join(parts)},)" if parts else f"{lead}pass"


def _magic_line(
    text: str, content: str, lead: str, assign: bool, number: int, result: CellSource
) -> tuple[str | None, str]:
    name, _, args = content.partition(" ")
    if name.startswith("%"):
        result.error = result.error or (
            f"line {number}: %%{name[1:]} is a cell magic, which works only on a cell's first "
            "line; move it there, or start a new cell with it"
        )
        return None, f"{lead}None" if assign else f"{lead}pass"
    if name == "cellpipe" or (name in ("load_ext", "reload_ext") and args.split() == ["cellpipe"]):
        # cellpipe driving itself from the notebook: `%cellpipe run` in a step would run the
        # pipeline again
        empty = f"{lead}None" if assign else f"{lead}pass"
        return f"{empty}  # cellpipe: {text}", empty
    if not assign:
        installs = pip_install_arguments(text)
        if installs is not None:
            return _installs(installs, text, lead, result)
    if name in _CODE_OPTIONS:  # `%time model.fit(X)`: the code is analysed
        code = _strip_options(args, _CODE_OPTIONS[name]).strip()
        if not _is_python(code, number, f"%{name}", result):
            code = ""
        if assign:  # `t = %timeit -o f(x)`
            if code and _is_expression(code):
                return None, f"{lead}({code})"
            return None, f"{lead}None; {code}" if code else f"{lead}None"
        return None, f"{lead}{code or 'pass'}"
    if name == "aimport":  # autoreload's import
        modules = [m.strip() for m in args.split(",") if m.strip()]
        if modules and all(re.fullmatch(r"[A-Za-z_][\w.]*", m) for m in modules):
            return None, f"{lead}import {', '.join(modules)}"
    elif name in _UNSEEN:
        result.warnings.append(f"line {number}: %{name} {_UNSEEN[name]}")
    elif name not in _NO_NAMES:
        result.warnings.append(_unknown(number, f"%{name}", "the line"))
    files = [repr(w) for w in _words(args) if _names_file(w)] if name not in _NO_FILES else []
    parts = _expansions(args) + files
    if assign:
        return None, f"{lead}[{', '.join(parts)}]"
    return None, f"{lead}({', '.join(parts)},)" if parts else f"{lead}pass"


def _installs(installs: PipInstall, text: str, lead: str, result: CellSource) -> tuple[str, str]:
    """`!pip install X`: X goes into the image; the step does not install it again."""
    result.requirements.extend(installs.requirements)
    if installs.options:
        result.warnings.append(
            f"{text!r}: the pip options {' '.join(installs.options)} are not carried into "
            "the pipeline; list packages in requirements.txt instead"
        )
    return f"{lead}pass  # cellpipe: {text}", f"{lead}pass"


# Line magics that touch no name of the notebook, except the `{expression}` and `$name` they
# expand, which the analysis reads: IPython's own, then common extensions'.
_NO_NAMES = frozenset(
    {
        "alias", "alias_magic", "autoawait", "autocall", "automagic", "bookmark", "cat", "cd",
        "clear", "colors", "conda", "config", "connect_info", "cp", "debug", "dhist", "dirs",
        "doctest_mode", "env", "gui", "hist", "history", "killbgscripts", "ldir", "less", "lf",
        "lk", "ll", "load_ext", "logoff", "logon", "logstart", "logstate", "logstop", "ls",
        "lsmagic", "lx", "magic", "mamba", "man", "matplotlib", "micromamba", "mkdir", "more",
        "mv", "notebook", "page", "pdb", "pdef", "pdoc", "pfile", "pinfo", "pinfo2", "pip",
        "popd", "pprint", "precision", "psearch", "psource", "pushd", "pwd", "pycat", "quickref",
        "rehashx", "reload_ext", "rm", "rmdir", "save", "set_env", "sx", "system", "tb",
        "unalias", "unload_ext", "uv", "who", "who_ls", "whos", "xmode", "autoreload",
        "tensorboard", "tensorflow_version", "watermark",
    }
)  # fmt: skip

# Line magics whose words are settings, not files.
_NO_FILES = frozenset(
    {"config", "matplotlib", "load_ext", "reload_ext", "unload_ext", "xmode", "precision", "gui"}
)

_HISTORY = (
    "works on the notebook's input history, which a step does not have; write the code out "
    "in the cell"
)
_DELETES = (
    "deletes names without cellpipe seeing which, so it may hand on or expect a name that is "
    "gone; delete names with del NAME"
)
_LOAD = "only fills the cell in Jupyter and runs nothing in a step; paste the code into the cell"
# Magics whose effect on names the analysis cannot see, and what to do instead.
_UNSEEN = {
    "run": (
        "runs a file's code, whose names cellpipe cannot see: a name it defines is not handed "
        "on to later steps, and one it uses is not received; put that code in the notebook's "
        "cells, or import it as a module"
    ),
    "store": (
        "keeps values in IPython's own database, which steps do not share (nor have %store); "
        "hand values between steps as variables"
    ),
    "load": _LOAD,
    "loadpy": _LOAD,
    "reset": _DELETES,
    "reset_selective": _DELETES,
    "xdel": _DELETES,
    "macro": _HISTORY,
    "recall": _HISTORY,
    "rep": _HISTORY,
    "rerun": _HISTORY,
    "edit": "opens an editor, which a step cannot; write the code in the cell",
    "ed": "opens an editor, which a step cannot; write the code in the cell",
    "pylab": (
        "defines numpy's and matplotlib's names without cellpipe seeing which; write "
        "%matplotlib inline and import numpy and matplotlib.pyplot"
    ),
    "sc": "sets a name cellpipe cannot see; write NAME = !COMMAND instead",
}


def _unknown(number: int, magic: str, where: str) -> str:
    return (
        f"line {number}: {magic} is a magic cellpipe does not know, so it cannot see which "
        f"names {where} reads or sets (a value made there is not handed on to later steps, nor "
        "one used there received); do that part in Python, and load the magic's extension "
        "(%load_ext) in this step or in the imports cell"
    )


# --- the words of a magic or shell line ---------------------------------------------------------

# IPython's DollarFormatter: `$name` or `$name.attr` outside single quotes; `$$` is a `$`.
_DOLLAR = re.compile(r"(.*?)\$(\$?[\w\.]+)(?=([^']*'[^']*')*[^']*$)")
# IPython's help syntax at a line's end (inputtransformer2._help_end_re).
_HELP_END = re.compile(r"(%{0,2}(?!\d)[\w*]+(\.(?!\d)[\w*]+|\[-?[0-9]+\])*)(\?\??)$")
_DOWNLOADERS = frozenset({"wget", "curl"})
_REDIRECTS = frozenset({">", ">>", "&>", ">|"})


def _expansions(text: str) -> list[str]:
    """The Python expressions IPython puts into a magic's or shell command's text, as its
    var_expand does: `{expression}` and `$name`, all of them or (where one cannot be read)
    none."""
    found: list[str] = []
    try:
        pieces = list(string.Formatter().parse(text))
    except ValueError:
        return []
    for literal, field_name, format_spec, _ in pieces:
        for match in _DOLLAR.finditer(literal):
            if not match.group(2).startswith("$"):
                found.append(match.group(2))
        if field_name:
            found.append(f"{field_name}:{format_spec}" if format_spec else field_name)
    return [f"({e})" for e in found if _is_expression(e)]


def _is_python(code: str, number: int, magic: str, result: CellSource) -> bool:
    """Whether the code a line's magic runs (`%time CODE`) is Python on its own; if not, the
    cell's error."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ast.parse(code)
    except SyntaxError as exc:
        result.error = result.error or (
            f"syntax error on line {number}, in {magic}: {exc.msg}; fix the cell or tag it 'skip'"
        )
        return False
    except (ValueError, RecursionError, MemoryError):
        return False  # the cell's parse says why
    return True


def _is_expression(text: str) -> bool:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ast.parse(text, mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    return "\n" not in text


def _words(text: str) -> list[str]:
    """A command line's words, as a shell splits them (`>` and `|` words of their own)."""
    lexer = shlex.shlex(text, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    try:
        return list(lexer)
    except ValueError:  # an unclosed quote
        return text.split()


def _expands(word: str) -> bool:
    return "$" in word or "{" in word


def _names_file(word: str) -> bool:
    return not _expands(word) and not word.startswith("-") and looks_like_path(word)


def _shell_parts(command: str, expand: bool) -> list[str]:
    """A shell command as Python the analysis reads: the expressions IPython expands into it,
    the files it names (a string each) and the files it writes (`> out.csv`, `wget -O F`: an
    open for writing each)."""
    parts = _expansions(command) if expand else []
    words = _words(command)
    program = ""
    for index, word in enumerate(words):
        before = words[index - 1] if index else ";"
        if before in (";", "|", "||", "&", "&&", "(") or not program:
            program = word.rsplit("/", 1)[-1]
        writes = before in _REDIRECTS or (
            program in _DOWNLOADERS and before in ("-O", "-o", "--output", "--output-document")
        )
        if _names_file(word):
            parts.append(f"open({word!r}, 'w')" if writes else repr(word))
    return parts


def _option_values(words: list[str], options: tuple[str, ...]) -> list[tuple[str, str]]:
    """(option, value) for each `--opt VALUE` or `--opt=VALUE` of `options` in `words`."""
    found = []
    for index, word in enumerate(words):
        option, equals, value = word.partition("=")
        if option in options:
            if not equals and index + 1 < len(words):
                value = words[index + 1]
            found.append((option, value))
    return found


def _strip_options(text: str, spec: str | None) -> str:
    """The code after a `%timeit`/`%prun` line's options (getopt's `spec`: a letter followed
    by `:` takes a value)."""
    if spec is None:
        return text
    rest = text.lstrip()
    while True:
        match = re.match(r"-(\w+)(?:\s+|$)", rest)
        if match is None:
            return rest
        rest = rest[match.end() :]
        letters = match.group(1)
        for position, letter in enumerate(letters):
            if f"{letter}:" in spec:
                if position == len(letters) - 1:  # the value is the next word
                    rest = re.sub(r"^\S+\s*", "", rest, count=1)
                break


# --- pip install lines --------------------------------------------------------------------------

_PIP_INSTALL = re.compile(
    r"^\s*[!%]\s*(?:(?:python3?|\{sys\.executable\}|\$sys\.executable)\s+-m\s+)?(?:uv\s+)?"
    r"pip3?\s+install\s+(.*)$"
)


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
