"""Build speed: `cellpipe build` with the append and engine builders, first build and rebuilds.

Starts its own infrastructure with the helpers of tests/containers.py: Debian's docker-registry
on 127.0.0.1, podman's Docker API service with private state, and the mmdebstrap Python base
image (its rootfs cached in ~/.cache/cellpipe-tests) pushed to that registry. Everything lives in
a temporary directory and is stopped and removed at the end.

For each builder, with a fresh CELLPIPE_HOME and its own repository in the registry, on its own
copy of examples/iris_sklearn_kale.ipynb (scikit-learn, pandas, numpy):

  1. the first build, the append builder's dependency install or the engine's wheel download
     included (it also fills the installers' package caches, uv's and pip's);
  2. append only: --cold cold builds, each with an empty build cache (a fresh CELLPIPE_HOME)
     into a new repository, package caches warm: the goal is <= 10 s (issue 17), with where
     the time goes (startup, requirements, installer, compression, push), read from the
     build's progress lines as they arrive;
  3. a rebuild with nothing changed (expected: cached, 0 bytes pushed);
  4. a rebuild after a one-cell edit (a line appended to the last step's cell, a fresh line
     each run);

3 and 4 are repeated --runs times. Seconds are the wall time of the whole `cellpipe build
--format json` process; bytes are the pushed_bytes of its JSON. Figures and goals are printed
by measure.py (minimum, median, spread; PASS/FAIL from the best run), with the machine's load
before and after. CELLPIPE_INSTALLER (auto, uv, pip) reaches the builds as set. Needs podman,
runc, docker-registry and mmdebstrap (when the base rootfs is not cached yet).

    python benchmarks/bench_build.py [--runs 3] [--cold 3] [--quick]
                                     [--builder append|engine ...] [--notebook NB]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DEFAULT_NOTEBOOK = ROOT / "examples" / "iris_sklearn_kale.ipynb"
FALLBACK_NOTEBOOK = ROOT / "examples" / "iris_cellpipe.ipynb"
BUILDERS = ("append", "engine")
BUILD_TIMEOUT = 1800.0  # seconds for one `cellpipe build` (a cold first build is minutes)
GOAL_BYTES = 100_000  # the one-cell rebuild with append pushes kilobytes...
GOAL_SECONDS = 2.0  # ...and takes about a second
GOAL_COLD_SECONDS = 10.0  # a cold append build, package caches warm (issue 17)
COLD_BEFORE = "before: 26-34 s, pip and gzip level 6 (issue 17)"
# Where a build's time goes: each progress line that starts with one of these begins a stage,
# which lasts until the next one begins (or the process ends). "looking for Python in the
# base" is no boundary: the append builder does it while the installer runs.
STAGES = (
    ("finding requirements", "requirements (the kernel's versions)"),
    ("reading the base image", "base image (manifest, config)"),
    ("installing ", "installer (uv or pip)"),
    ("writing the dependencies layer", "compression (dependencies layer, gzip)"),
    ("assembling the code layer", "code layer"),
    ("copying base layer", "push (layers)"),
    ("pushing layer", "push (layers)"),
    ("pushing the manifest", "push (manifest)"),
)
STARTUP = "startup (imports, until the first progress line)"

sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))
import pytest  # noqa: E402
from measure import Figure, Goal, Load  # noqa: E402

from tests.containers import (  # noqa: E402
    BaseImage,
    CommandFailed,
    ContainerEngine,
    Registry,
    free_port,
    make_base_image,
    start_container_engine,
    start_registry,
)


class BenchError(Exception):
    pass


@dataclass
class Build:
    """One `cellpipe build` process: its wall time and what its JSON says."""

    wall: float
    seconds: float  # the build's own "seconds" (in process, after imports)
    pushed_bytes: int
    cached: bool
    image: str
    stages: dict[str, float] = field(default_factory=dict)  # seconds by stage (STAGES)
    progress: list[str] = field(default_factory=list)  # the build's progress lines


@dataclass
class BuilderResult:
    builder: str
    first: Build
    cold: list[Build] = field(default_factory=list)
    no_change: list[Build] = field(default_factory=list)
    edited: list[Build] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def progress(message: str) -> None:
    print(f"... {message}", file=sys.stderr, flush=True)


def human_bytes(count: float) -> str:
    if count < 1000:
        return f"{count:.0f} B"
    if count < 1e6:
        return f"{count / 1e3:.1f} kB"
    return f"{count / 1e6:.1f} MB"


def build(notebook: Path, registry: str, base: str, builder: str, env: dict[str, str]) -> Build:
    """Times one `cellpipe build ... --format json` as a whole process; BenchError if it fails."""
    command = [
        sys.executable,
        "-m",
        "cellpipe.cli",
        "build",
        str(notebook),
        "--registry",
        registry,
        "--base",
        base,
        "--builder",
        builder,
        "--format",
        "json",
    ]
    start = time.perf_counter()
    stdout: list[str] = []
    lines: list[tuple[float, str]] = []  # each line of stderr with when it arrived
    with subprocess.Popen(
        command,
        cwd=notebook.parent,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as process:
        assert process.stdout is not None and process.stderr is not None
        pipe = process.stdout
        reader = threading.Thread(target=lambda: stdout.append(pipe.read()))
        reader.start()
        timer = threading.Timer(BUILD_TIMEOUT, process.kill)
        timer.start()
        try:
            for line in process.stderr:
                lines.append((time.perf_counter() - start, line.rstrip("\n")))
            returncode = process.wait()
        finally:
            timer.cancel()
            reader.join()
    wall = time.perf_counter() - start
    out, err = "".join(stdout), "\n".join(line for _, line in lines)
    if returncode != 0:
        if wall >= BUILD_TIMEOUT:
            raise BenchError(f"cellpipe build --builder {builder}: over {BUILD_TIMEOUT:.0f} s")
        tail = (out + err)[-3000:]
        raise BenchError(f"cellpipe build --builder {builder} exited {returncode}:\n{tail}")
    try:
        data: dict[str, Any] = json.loads(out)
    except json.JSONDecodeError:
        raise BenchError(
            f"cellpipe build --builder {builder} printed no JSON:\n{out[-2000:]}"
        ) from None
    return Build(
        wall,
        float(data["seconds"]),
        int(data["pushed_bytes"]),
        bool(data["cached"]),
        data["image"],
        stages(lines, wall),
        [line for _, line in lines],
    )


def stages(lines: Sequence[tuple[float, str]], end: float) -> dict[str, float]:
    """Seconds by stage (STAGES), from the progress lines' arrival times."""
    spent: dict[str, float] = {}
    current, since = STARTUP, 0.0
    for arrived, line in lines:
        text = line.strip()
        stage = next((name for prefix, name in STAGES if text.startswith(prefix)), None)
        if stage is None:
            continue
        spent[current] = spent.get(current, 0.0) + arrived - since
        current, since = stage, arrived
    spent[current] = spent.get(current, 0.0) + end - since
    return spent


def edit_last_step(notebook: Path, number: int) -> int:
    """Appends a harmless line to the last cell of the last step; that cell's index (0-based)."""
    from cellpipe.converter import load_pipeline

    pipeline = load_pipeline(notebook)
    last = max((cell.index for step in pipeline.steps for cell in step.cells), default=None)
    if last is None:
        raise BenchError(f"{notebook}: no steps to edit")
    raw = json.loads(notebook.read_text())
    index = int(last)
    cell = raw["cells"][index]
    source = cell["source"]
    text = "".join(source) if isinstance(source, list) else str(source)
    cell["source"] = text.rstrip("\n") + f'\nprint("bench edit {number}")'
    notebook.write_text(json.dumps(raw, indent=1, ensure_ascii=False) + "\n")
    return index


def runtime_fingerprint() -> str:
    """A hash of the cellpipe files every image's code layer holds (read from the source tree).

    When it changes between two builds, the tag changes too: someone edited cellpipe meanwhile.
    """
    from cellpipe.launcher.images import runtime_files

    digest = hashlib.sha256()
    for path, content in sorted(runtime_files().items()):
        digest.update(path.encode() + b"\0" + hashlib.sha256(content).digest())
    return digest.hexdigest()


def measure(
    builder: str,
    notebook: Path,
    work: Path,
    registry: Registry,
    base: BaseImage,
    engine: ContainerEngine,
    runs: int,
    cold_runs: int,
) -> BuilderResult:
    folder = work / builder
    folder.mkdir()
    home = folder / "home"  # fresh: the first build pays for wheels or the dependency install
    home.mkdir()
    copy = Path(shutil.copy(notebook, folder / notebook.name))
    env = {**engine.subprocess_env(), "CELLPIPE_HOME": str(home)}
    target = f"{registry.host}/{builder}"
    tree = [runtime_fingerprint()]  # before each build

    def timed_build() -> Build:
        tree.append(runtime_fingerprint())
        return build(copy, target, base.ref, builder, env)

    def tree_note() -> str:
        if tree[-1] != tree[-2]:
            return (
                " (cellpipe's runtime files in the source tree changed since the build before: "
                "a concurrent edit of cellpipe, not the builder)"
            )
        return ""

    progress(f"{builder}: first build (fresh CELLPIPE_HOME)")
    first = timed_build()
    result = BuilderResult(builder, first)
    if first.cached or first.pushed_bytes == 0:
        result.notes.append(
            f"the first build says cached={first.cached}, pushed {first.pushed_bytes} bytes"
        )
    image = first.image
    for run in range(1, cold_runs + 1 if builder == "append" else 1):
        # cold: an empty build cache (a fresh CELLPIPE_HOME), a new repository; the package
        # caches stay warm (the first build filled them)
        progress(f"{builder}: cold build {run}/{cold_runs}")
        cold_home = folder / f"cold-home-{run}"
        cold_home.mkdir()
        cold = build(
            copy,
            f"{target}-cold-{run}",
            base.ref,
            builder,
            {**env, "CELLPIPE_HOME": str(cold_home)},
        )
        result.cold.append(cold)
        if cold.cached or cold.pushed_bytes == 0:
            result.notes.append(
                f"cold build {run} says cached={cold.cached}, pushed {cold.pushed_bytes} bytes"
            )
    for run in range(1, runs + 1):
        progress(f"{builder}: run {run}/{runs}: rebuild with nothing changed")
        again = timed_build()
        result.no_change.append(again)
        if not again.cached or again.pushed_bytes != 0 or again.image != image:
            result.notes.append(
                f"run {run}: the no-change rebuild says cached={again.cached}, pushed "
                f"{again.pushed_bytes} bytes, image {'same' if again.image == image else 'other'}"
                + tree_note()
            )
        cell = edit_last_step(copy, run)
        progress(f"{builder}: run {run}/{runs}: rebuild after editing cell {cell + 1}")
        edited = timed_build()
        result.edited.append(edited)
        if edited.cached or edited.image == image or edited.pushed_bytes == 0:
            result.notes.append(
                f"run {run}: the one-cell-edit rebuild says cached={edited.cached}, pushed "
                f"{edited.pushed_bytes} bytes, image {'same' if edited.image == image else 'new'}"
            )
        elif tree[-1] != tree[-2]:
            result.notes.append(f"run {run}: the one-cell-edit rebuild{tree_note()}")
        image = edited.image
    return result


def table_cell(builds: Sequence[Build]) -> str:
    """Median seconds / median bytes."""
    wall = statistics.median(b.wall for b in builds)
    pushed = statistics.median(b.pushed_bytes for b in builds)
    return f"{wall:6.2f} s / {human_bytes(pushed)}"


def spread(label: str, builds: Sequence[Build]) -> str:
    walls = [b.wall for b in builds]
    pushed = [b.pushed_bytes for b in builds]
    inside = [b.seconds for b in builds]
    cached = sum(b.cached for b in builds)
    return (
        f"  {label:<15} wall median {statistics.median(walls):6.2f} s (min {min(walls):.2f}, "
        f"max {max(walls):.2f}, n={len(walls)}); in process median "
        f"{statistics.median(inside):.2f} s; pushed median {human_bytes(statistics.median(pushed))}"
        f" (min {human_bytes(min(pushed))}, max {human_bytes(max(pushed))}); "
        f"cached {cached}/{len(builds)}"
    )


def print_report(results: list[BuilderResult], load: Load) -> None:
    headers = ("builder", "first build s / bytes", "no-change s / bytes", "one-cell edit s / bytes")
    rows = [
        (r.builder, table_cell([r.first]), table_cell(r.no_change), table_cell(r.edited))
        for r in results
    ]
    widths = [max(len(row[i]) for row in [headers, *rows]) for i in range(len(headers))]
    print()
    print(" | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)))
    print("-+-".join("-" * w for w in widths))
    for row in rows:
        print(" | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))
    print("(no-change and one-cell edit: medians; seconds are whole `cellpipe build` processes)")
    print()
    for r in results:
        print(f"{r.builder}:")
        print(spread("first build", [r.first]))
        if r.cold:
            print(spread("cold build", r.cold))
        print(spread("no-change", r.no_change))
        print(spread("one-cell edit", r.edited))
        for note in r.notes:
            print(f"  note: {note}")
    by_name = {r.builder: r for r in results}
    if "append" in by_name and "engine" in by_name:
        append, engine = by_name["append"].edited, by_name["engine"].edited
        wall_ratio = statistics.median(b.wall for b in engine) / statistics.median(
            b.wall for b in append
        )
        append_bytes = statistics.median(b.pushed_bytes for b in append)
        bytes_ratio = (
            f"{statistics.median(b.pushed_bytes for b in engine) / append_bytes:.1f}x"
            if append_bytes
            else "n/a (append pushed 0 bytes)"
        )
        print()
        print(
            f"ratio engine / append, one-cell edit (medians): {wall_ratio:.1f}x the seconds, "
            f"{bytes_ratio} the bytes"
        )
    print()
    print("Figures (whole `cellpipe build` processes):")
    goals: list[Goal] = []
    for r in results:
        name = r.builder
        if r.cold:
            cold = Figure(f"{name}: cold build (empty build cache, new repo)", seconds(r.cold))
            print(cold.line())
            goals.append(Goal(cold, "<=", GOAL_COLD_SECONDS, COLD_BEFORE))
        print(Figure(f"{name}: rebuild, nothing changed", seconds(r.no_change)).line())
        edited = Figure(f"{name}: rebuild after a one-cell edit", seconds(r.edited))
        pushed = Figure(
            f"{name}: bytes pushed by a one-cell rebuild",
            [float(b.pushed_bytes) for b in r.edited],
            "B",
        )
        print(edited.line())
        print(pushed.line())
        if name == "append":
            goals.append(Goal(edited, "<=", GOAL_SECONDS, "about a second"))
            goals.append(Goal(pushed, "<=", GOAL_BYTES, "kilobytes, not the dependencies"))
    for r in results:
        if r.cold:
            print_breakdown(r)
    if goals:
        print()
        print("Goals (PASS/FAIL from the best run):")
        for goal in goals:
            print(goal.line())
    print(load.line())


def seconds(builds: Sequence[Build]) -> list[float]:
    return [b.wall for b in builds]


def print_breakdown(result: BuilderResult) -> None:
    """Where the cold builds' time goes, stage by stage, and which installer ran."""
    print()
    print(f"Where a cold {result.builder} build's time goes (from its progress lines):")
    names = [STARTUP, *dict.fromkeys(name for _, name in STAGES)]
    for name in names:
        samples = [b.stages.get(name, 0.0) for b in result.cold]
        if any(samples):
            print(Figure(f"  {name}", samples).line())
    said = [line for line in result.cold[0].progress if "requirements with" in line]
    said += [line for line in result.cold[0].progress if "writing the dependencies" in line]
    for line in said:
        print(f"   said: {line}")


def bench(
    notebook: Path, builders: Sequence[str], runs: int, cold_runs: int
) -> list[BuilderResult]:
    results = []
    with tempfile.TemporaryDirectory(prefix="cp-bench-", ignore_cleanup_errors=True) as scratch:
        work = Path(scratch)
        started = time.monotonic()
        progress("starting docker-registry on 127.0.0.1")
        # The registry first: podman reads registries.conf (which marks it insecure) only once.
        with start_registry(work / "registry", free_port()) as registry:
            progress(f"starting podman's Docker API service (state in {work / 'podman'})")
            with start_container_engine(
                work / "podman", [registry.host], remove_state=True
            ) as engine:
                progress("making the base image and pushing it to the registry")
                base = make_base_image(engine, registry)
                version = engine.podman("version", "--format", "{{.Client.Version}}").stdout
                timings = ", ".join(f"{k} {v:.1f} s" for k, v in base.timings.items())
                print(
                    f"infrastructure: podman {version.strip()} (Docker API at "
                    f"{engine.docker_host}), docker-registry at {registry.url}; ready in "
                    f"{time.monotonic() - started:.1f} s"
                )
                print(
                    f"base image: {base.ref} (Python {base.python_version}, "
                    f"{base.architecture}; rootfs {'built now' if base.built else 'cached'}: "
                    f"{timings})",
                    flush=True,
                )
                for builder in builders:
                    results.append(
                        measure(builder, notebook, work, registry, base, engine, runs, cold_runs)
                    )
            progress("stopping podman and the registry")
    return results


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # unwinds the context managers: servers stopped, dirs removed


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="rebuilds of each kind (default 3)")
    parser.add_argument(
        "--cold",
        type=int,
        default=3,
        help="cold append builds (empty build cache, new repository; default 3)",
    )
    parser.add_argument("--quick", action="store_true", help="one build of each kind")
    parser.add_argument(
        "--builder",
        action="append",
        choices=BUILDERS,
        help="measure only this builder (repeatable; default: both)",
    )
    parser.add_argument(
        "--notebook",
        type=Path,
        default=None,
        help="default: " + str(DEFAULT_NOTEBOOK.relative_to(ROOT)),
    )
    args = parser.parse_args(argv)
    runs = 1 if args.quick else args.runs
    cold_runs = 1 if args.quick else args.cold
    if runs < 1 or cold_runs < 1:
        parser.error("--runs and --cold must be at least 1")
    builders = [b for b in BUILDERS if b in (args.builder or BUILDERS)]
    notebook: Path = args.notebook or DEFAULT_NOTEBOOK
    if args.notebook is None and not notebook.is_file():
        print(f"note: {DEFAULT_NOTEBOOK} is missing; using {FALLBACK_NOTEBOOK} instead")
        notebook = FALLBACK_NOTEBOOK
    notebook = notebook.resolve()
    if not notebook.is_file():
        parser.error(f"no such notebook: {notebook}")
    shown = notebook.relative_to(ROOT) if notebook.is_relative_to(ROOT) else notebook
    print(
        f"notebook: {shown}; builders: {', '.join(builders)}; {runs} rebuild(s) of each kind, "
        f"{cold_runs} cold append build(s); CELLPIPE_INSTALLER="
        f"{os.environ.get('CELLPIPE_INSTALLER') or 'auto'}; {os.cpu_count()} cores, "
        f"Python {platform.python_version()}",
        flush=True,
    )
    signal.signal(signal.SIGTERM, _terminate)
    load = Load.now()
    try:
        results = bench(notebook, builders, runs, cold_runs)
    except (BenchError, CommandFailed) as exc:
        print(f"bench_build: {exc}", file=sys.stderr)
        return 1
    except pytest.fail.Exception as exc:  # what tests/containers.py raises for missing tools
        print(f"bench_build: {exc}", file=sys.stderr)
        return 1
    print_report(results, load)
    return 0


if __name__ == "__main__":
    sys.exit(main())
