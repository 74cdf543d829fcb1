"""IPython magics, loaded by `%load_ext cellpipe`: `%%step` and `%cellpipe`.

- `%%step NAME [--after A [B ...]] [--gpu N[:TYPE]] [--cpu Q] [--memory Q] [--image REF]` as a
  cell's first line runs the cell as usual and is the step tag itself: the converter reads the
  same line with the same parser (cellpipe.converter.tags.parse_step_line). A bad line is a
  UsageError and the cell does not run. It is an input transformer, so the cell runs exactly as
  it would without the line (its errors, its last value, its line numbers); the cell magic of
  the same name is there for `%%step?` and for explicit `run_cell_magic` calls.
- `%cellpipe COMMAND ...` is the `cellpipe` command: the same grammar and commands
  (cellpipe.commands, over the launcher), acting on the notebook this kernel runs
  (`--notebook PATH` otherwise). It says which file, and when it was saved, before acting.
  Without `--format`, results come back as rich objects (cellpipe.views): the pipeline with its
  DAG, a run's steps and metrics, GPUs; the object is also the magic's value
  (`run = %cellpipe run`). A failure is a UsageError, so "run all" stops there.
- `%cellpipe load RUN NAME [--step S] [--as VAR]` binds a value (or metric) a run kept.
- `%cellpipe debug RUN STEP` binds the values and parameters step STEP of run RUN received
  (runs of the local engines) and says which cell failed, to re-run it in the notebook.
- `%cellpipe submit --form` shows cellpipe.widgets.SubmitForm.
"""

from __future__ import annotations

import argparse
import io
import reprlib
import shlex
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn

from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class

from cellpipe.commands import Outcome, execute
from cellpipe.commands.arguments import build_parser
from cellpipe.commands.terminal import terminal_safe
from cellpipe.converter.tags import (
    STEP_LINE_USAGE,
    StepLineError,
    parse_cell_tags,
    parse_step_line,
    split_step_line,
)
from cellpipe.launcher.errors import UserError

if TYPE_CHECKING:
    from cellpipe.launcher.debugging import StepInputs

# Commands whose JSON has a rich view (cellpipe.views); the others print what the CLI prints.
RICH_COMMANDS = frozenset({"compile", "run", "submit", "runs", "status", "cancel", "gpus"})


# --- %%step -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StepMagic:
    """A `%%step` line, read as the tags it stands for."""

    name: str
    after: tuple[str, ...]
    gpu_count: int | None
    gpu_type: str | None
    cpu: str | None
    memory: str | None
    image: str | None
    tags: tuple[str, ...]


def parse_step_magic(line: str) -> StepMagic:
    """Read a `%%step` line (with or without the leading `%%step`), or raise UsageError.

    The converter's parser reads it, then the tag grammar checks the values, so a line the
    kernel accepts is a line the converter accepts, and the other way round.
    """
    text = line.strip()
    if not text.startswith("%%step"):
        text = f"%%step {text}"
    try:
        parsed = parse_step_line(text)
    except StepLineError as exc:
        raise UsageError(f"%%step: {exc}") from None
    tags = parse_cell_tags(parsed.tags)
    if tags.errors:
        raise UsageError(f"%%step: {'; '.join(tags.errors)}; usage: {STEP_LINE_USAGE}")
    return StepMagic(
        name=tags.step_names[0],
        after=tuple(tags.after),
        gpu_count=tags.gpu.count if tags.gpu else None,
        gpu_type=tags.gpu.type if tags.gpu else None,
        cpu=tags.cpu_request,
        memory=tags.memory_request,
        image=tags.image,
        tags=tuple(parsed.tags),
    )


class StepLineTransformer:
    """Checks a cell's `%%step` first line and takes it out, so the cell runs as plain code.

    The line becomes an empty line (tracebacks keep the cell's line numbers), unless another
    cell magic follows it (`%%time`), which then comes first, as the converter reads it.
    """

    # IPython's completeness check (a terminal deciding whether input is complete) skips
    # transformers with side effects; raising there would break the prompt.
    has_side_effects = True

    def __call__(self, lines: list[str]) -> list[str]:
        step_line, rest = split_step_line("".join(lines))
        if step_line is None:
            return lines
        parse_step_magic(step_line)
        # `rest` keeps the cell's line numbers: the %%step line is an empty line in it
        body: list[str] = str(rest).splitlines(keepends=True)
        code = [line for line in body if line.strip()]
        if code and code[0].startswith("%%"):  # another cell magic must come first to work
            return body[body.index(code[0]) :]
        return body


# --- %cellpipe: parsing into typed models -------------------------------------------------------


class _Done(Exception):
    """argparse finished without a command to run (it printed help or the version)."""


@dataclass
class CellPipeCommand:
    """`%cellpipe COMMAND ...`: a CLI subcommand, its parsed arguments, and how to show it."""

    command: str
    args: argparse.Namespace
    takes_notebook: bool  # the subcommand acts on a notebook (NOTEBOOK positional)
    notebook: str | None  # named by the user (NOTEBOOK or --notebook); None: the kernel's
    rich: bool  # no --format given: the JSON is shown as a rich object


@dataclass(frozen=True)
class LoadCommand:
    """`%cellpipe load RUN NAME [--step S] [--as VAR]`."""

    run_id: str
    name: str
    step: str | None
    target: str  # the variable it is bound to


@dataclass(frozen=True)
class DebugCommand:
    """`%cellpipe debug RUN STEP`."""

    run_id: str
    step: str


@dataclass(frozen=True)
class FormCommand:
    """`%cellpipe submit --form [NOTEBOOK] [--engine E] [-p NAME=VALUE ...]`."""

    notebook: str | None
    engine: str | None
    parameters: tuple[str, ...]


class MagicArgumentParser(argparse.ArgumentParser):
    """Errors become UsageError (one clear line, and the cell stops); help ends the magic."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}\n{self.format_usage().strip()}")

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        if message:
            print(message, file=sys.stderr)
        raise _Done()


def magic_parser() -> argparse.ArgumentParser:
    """The command grammar's `%cellpipe` variant: NOTEBOOK optional (the kernel's notebook by
    default) or `--notebook PATH`, `submit --form`, and `load`."""
    return build_parser(for_magic=True, prog="%cellpipe", parser_class=MagicArgumentParser)


def form_parser() -> argparse.ArgumentParser:
    parser = MagicArgumentParser(
        prog="%cellpipe submit --form",
        description="Show a form to choose the engine, parameters and GPUs, then submit and "
        "follow the run with a progress bar per step.",
        add_help=False,
    )
    parser.add_argument("notebook", nargs="?", metavar="NOTEBOOK")
    parser.add_argument("--notebook", dest="notebook_option", metavar="PATH")
    parser.add_argument("--form", action="store_true")
    parser.add_argument("--engine", metavar="ENGINE")
    parser.add_argument("-p", "--parameter", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("-h", "--help", action="help")
    return parser


def parse_magic(
    line: str,
) -> CellPipeCommand | LoadCommand | DebugCommand | FormCommand | None:
    """The typed command a `%cellpipe` line stands for; None when it only asked for help."""
    try:
        words = shlex.split(line)
    except ValueError as exc:
        raise UsageError(f"%cellpipe: cannot read the line ({exc})") from None
    try:
        if not words:
            print(magic_parser().format_help())
            return None
        if words[0] == "submit" and "--form" in words:
            form = form_parser().parse_args(words[1:])
            return FormCommand(
                _one_notebook(form.notebook, form.notebook_option),
                form.engine,
                tuple(form.parameter),
            )
        args = magic_parser().parse_args(words)
    except _Done:
        return None
    if args.command == "load":
        target = args.target or args.name
        if not target.isidentifier():
            raise UsageError(f"%cellpipe load: {target!r} is not a variable name; use --as VAR")
        return LoadCommand(args.run, args.name, args.step, target)
    if args.command == "debug":
        return DebugCommand(args.run, " ".join(args.step))  # an unquoted name with spaces too
    takes_notebook = hasattr(args, "notebook_option")
    notebook = _one_notebook(args.notebook, args.notebook_option) if takes_notebook else None
    given_format = any(w == "--format" or w.startswith("--format=") for w in words)
    rich = (
        args.command in RICH_COMMANDS
        and hasattr(args, "format")
        and not given_format
        and not getattr(args, "dry_run", False)  # what would be sent reads best as YAML
    )
    if rich:
        args.format = "json"
    return CellPipeCommand(args.command, args, takes_notebook, notebook, rich)


def _one_notebook(positional: str | None, option: str | None) -> str | None:
    if positional and option and positional != option:
        raise UsageError(f"name the notebook once: {positional} or --notebook {option}")
    return positional or option


# --- the magics ---------------------------------------------------------------------------------


@magics_class
class CellPipeMagics(Magics):
    """`%%step` and `%cellpipe`; see the module's docstring."""

    @cell_magic
    def step(self, line: str, cell: str) -> None:
        """%%step NAME [--after A [B ...]] [--gpu N[:TYPE]] [--cpu Q] [--memory Q] [--image REF]

        The cell begins step NAME of the notebook's pipeline (the same as the tag step:NAME
        and the tags the options name); the cell itself runs as usual.
        """
        parse_step_magic(line)
        self._shell.run_cell(cell)

    @line_magic
    def cellpipe(self, line: str) -> Any:
        """%cellpipe COMMAND [options]: the cellpipe command on this notebook.

        COMMAND is any `cellpipe` subcommand (compile, run, build, requirements, submit, runs,
        status, logs, cancel, delete, gpus), with its options; NOTEBOOK defaults to the notebook
        this kernel runs (or --notebook PATH). Also `load RUN NAME [--step S] [--as VAR]`,
        `debug RUN STEP` and `submit --form`. `%cellpipe` alone lists it all; `%cellpipe
        COMMAND -h` says more.
        """
        command = parse_magic(line)
        if command is None:
            return None
        if isinstance(command, LoadCommand):
            return self._load(command)
        if isinstance(command, DebugCommand):
            return self._debug(command)
        if isinstance(command, FormCommand):
            return self._form(command)
        return self._run(command)

    # -- commands -------------------------------------------------------------------------------
    @property
    def _shell(self) -> Any:
        assert self.shell is not None, "the magics are registered with a shell"
        return self.shell

    def _notebook(self, named: str | None) -> Any:
        from cellpipe.notebook_finder import NotebookNotFound, find_notebook

        try:
            found = find_notebook(named, namespace=self._shell.user_ns)
        except NotebookNotFound as exc:
            raise UsageError(f"%cellpipe: {exc}") from None
        print(f"cellpipe: {found.describe()}", flush=True)
        return found

    def _run(self, command: CellPipeCommand) -> Any:
        from cellpipe.views import view_for

        args = command.args
        if command.takes_notebook:
            args.notebook = str(self._notebook(command.notebook).path)
        # rich: the command's result is shown as a view, not printed (its JSON goes nowhere)
        out: Any = io.StringIO() if command.rich else sys.stdout
        # compile's JSON holds its warnings and errors, which the view shows: not twice
        err: Any = io.StringIO() if command.rich and command.command == "compile" else sys.stderr
        extra: dict[str, Any] = {"display": self._live_display} if command.command == "run" else {}
        if command.command == "serve":  # the kernel goes on: the model server stays running
            extra["background"] = True
        if command.command == "tune":  # its trials as a table, live
            extra["display"] = self._tune_display
        try:
            outcome: Outcome = execute(args, out, err, **extra)
        except UserError as exc:
            raise UsageError(f"cellpipe {command.command}: {exc}") from None
        if not command.rich:
            if outcome.status != 0:
                raise UsageError(f"cellpipe {command.command} ended with status {outcome.status}")
            return None
        data = outcome.data
        if data is None and isinstance(err, io.StringIO):
            sys.stderr.write(err.getvalue())
        view = view_for(command.command, data) if data is not None else None
        if outcome.status != 0:
            if view is not None:
                self._display(view)
            raise UsageError(_failure(command.command, outcome.status, data))
        return view

    def _display(self, value: Any) -> None:
        from IPython.display import display

        display(value)  # type: ignore[no-untyped-call]

    def _live_display(self, step_names: Sequence[str]) -> Any:
        """The steps of `%cellpipe run` as they go: a table redrawn in place in a notebook,
        a line per event in a terminal."""
        if "ipykernel" in type(self.shell).__module__:
            from IPython.display import display

            from cellpipe.views import LiveRun

            return LiveRun(step_names, display)
        from cellpipe.commands.progress import PlainProgress

        return PlainProgress(sys.stdout)

    def _tune_display(self, plan: Any) -> Any:
        """The trials of `%cellpipe tune` as they go: a TuneTable widget in a notebook, a
        line per trial in a terminal."""
        if "ipykernel" in type(self.shell).__module__:
            from cellpipe.widgets import TuneTable

            table = TuneTable(plan.request.objective, plan.request.direction)
            self._display(table)
            return table
        from cellpipe.commands.tune import PlainTrials

        return PlainTrials(sys.stdout)

    def _load(self, command: LoadCommand) -> None:
        from cellpipe.launcher.results import locate
        from cellpipe.launcher.store import ResultError, open_store

        store = open_store()
        try:
            located = locate(store, command.run_id, command.name, command.step)
            value = located.load()
        except ResultError as exc:
            raise UsageError(f"%cellpipe load: {exc}") from None
        self._shell.user_ns[command.target] = value
        print(f"cellpipe: {command.target} = {located.describe()} ({type(value).__name__})")

    def _debug(self, command: DebugCommand) -> None:
        """Binds what the step received, prints it and the failed cell (see debug_lines)."""
        from cellpipe.launcher.debugging import debug_inputs

        try:
            inputs = debug_inputs(command.run_id, command.step)
        except UserError as exc:
            raise UsageError(f"%cellpipe debug: {exc}") from None
        loaded: dict[str, Any] = {}
        unreadable = []
        for name in inputs.values:
            try:
                loaded[name] = inputs.load(name)
            except UserError as exc:
                unreadable.append(str(exc))
        loaded.update(inputs.parameters)
        self._shell.push(loaded)
        print(terminal_safe("\n".join(debug_lines(inputs, loaded))), flush=True)
        if unreadable:
            raise UsageError("%cellpipe debug: " + "; ".join(unreadable))

    def _form(self, command: FormCommand) -> Any:
        from cellpipe.widgets import SubmitForm

        found = self._notebook(command.notebook)
        try:
            return SubmitForm(
                found.path,
                engine=command.engine,
                parameters=list(command.parameters),
                shell=self.shell,
            )
        except (UserError, ValueError) as exc:
            raise UsageError(f"%cellpipe submit --form: {exc}") from None


def _failure(command: str, status: int, data: Any) -> str:
    if isinstance(data, dict):
        if data.get("errors"):
            count = len(data["errors"])
            return f"cellpipe {command}: the notebook has {count} error{'s' * (count != 1)} (above)"
        if data.get("run_id"):
            why = f": {data['error']}" if data.get("error") else ""
            return f"run {data['run_id']} {data.get('status', 'failed')}{why}"
    return f"cellpipe {command} ended with status {status}"


# --- %cellpipe debug: what it says --------------------------------------------------------------

REPR_WIDTH = 60
_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = REPR_WIDTH
_REPR.maxlist = _REPR.maxtuple = _REPR.maxdict = _REPR.maxset = 6


def short_repr(value: Any, width: int = REPR_WIDTH) -> str:
    """A value in one short line: the shape of an array or frame, else its repr, cut."""
    shape = getattr(value, "shape", None)
    if isinstance(shape, tuple) and not isinstance(value, type):
        return f"shape {tuple(shape)}"
    try:
        text = _REPR.repr(value)
    except Exception as exc:  # a user's __repr__ may fail: the value is still loaded
        text = f"<repr failed: {type(exc).__name__}>"
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def debug_lines(inputs: StepInputs, loaded: dict[str, Any]) -> list[str]:
    """What `%cellpipe debug` says: what it loaded (name, type, where from, a short repr),
    which cell failed and at which line, and which cells to run again."""
    lines = [
        f"cellpipe: step {inputs.step!r} of run {inputs.run_id} ({inputs.status}): "
        f"{'loaded into this kernel' if loaded else 'nothing loaded'}"
    ]
    rows = [
        (
            name,
            type(value).__name__,
            f"step {inputs.received_from[name]!r}" if name in inputs.received_from else "parameter",
            short_repr(value),
        )
        for name, value in loaded.items()
    ]
    if rows:
        rows.insert(0, ("name", "type", "from", "value"))
        widths = [max(len(row[i]) for row in rows) for i in range(3)]
        for row in rows:
            padded = [row[i].ljust(widths[i]) for i in range(3)]
            lines.append("  " + "  ".join([*padded, row[3]]))
    cells = [index + 1 for index in inputs.cells]
    if inputs.failed_cell is not None:
        failed = inputs.failed_cell + 1
        at = f" at line {inputs.error_line}" if inputs.error_line else ""
        lines.append(f"cellpipe: cell {failed} failed{at}: {inputs.error}")
        before = [n for n in cells if n < failed] if failed in cells else []
        if before:
            earlier = ", ".join(str(n) for n in before)
            plural = "s" if len(before) > 1 else ""
            lines.append(
                f"cellpipe: run the step's cell{plural} {earlier} before it, then re-run cell "
                f"{failed}"
            )
        else:
            lines.append(f"cellpipe: re-run cell {failed}")
    else:
        why = f": {inputs.error}" if inputs.error else ""
        lines.append(f"cellpipe: no cell failed (step {inputs.status}{why})")
        if cells:
            lines.append(f"cellpipe: its cells: {', '.join(str(n) for n in cells)}")
    return lines


# --- loading ------------------------------------------------------------------------------------

_TRANSFORMER = StepLineTransformer()


def load_ipython_extension(shell: Any) -> None:
    """Register the magics and the `%%step` line check (again on reload: no duplicates)."""
    shell.register_magics(CellPipeMagics)
    transforms = shell.input_transformers_cleanup
    if not any(isinstance(t, StepLineTransformer) for t in transforms):
        transforms.append(_TRANSFORMER)


def unload_ipython_extension(shell: Any) -> None:
    transforms = shell.input_transformers_cleanup
    transforms[:] = [t for t in transforms if not isinstance(t, StepLineTransformer)]
    magics = shell.magics_manager.magics
    magics["cell"].pop("step", None)
    magics["line"].pop("cellpipe", None)
    shell.magics_manager.registry.pop("CellPipeMagics", None)
