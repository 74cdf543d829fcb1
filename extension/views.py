"""Rich output of the magics: the pipeline with its DAG as SVG, runs, metrics, GPUs.

Each view holds the JSON the CLI prints (`--format json`), and shows it as HTML in a notebook
(`_repr_html_`) and as plain text in a terminal (`__repr__`), so `%cellpipe compile` in a
notebook and `cellpipe compile` in a shell say the same things. Step names and every other
user text are escaped. Nothing here imports more than the standard library and the vocabulary.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from html import escape
from pathlib import Path
from typing import Any

from cellpipe.launcher.vocabulary import FINISHED

STATUS_COLORS = {  # fill, stroke
    "Pending": ("#ffffff", "#9ca3af"),
    "Running": ("#dbeafe", "#2563eb"),
    "Succeeded": ("#dcfce7", "#16a34a"),
    "Failed": ("#fee2e2", "#dc2626"),
    "Cancelled": ("#f3f4f6", "#6b7280"),
    None: ("#eef2ff", "#6366f1"),
}
_TABLE = 'style="border-collapse:collapse;margin:4px 0;font-size:13px"'
_CELL = 'style="border:1px solid #d1d5db;padding:2px 8px;text-align:left;vertical-align:top"'
_MAX_LABEL = 26


def _esc(value: Any) -> str:
    return escape(str(value), quote=True)


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], raw: bool = False) -> str:
    """An HTML table; cells are escaped unless `raw` (cells already HTML)."""
    head = "".join(f"<th {_CELL}>{_esc(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td {_CELL}>{c if raw else _esc(c)}</td>" for c in row) + "</tr>"
        for row in rows
    )
    return f"<table {_TABLE}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _seconds(value: Any) -> str:
    return f"{value:.2f} s" if isinstance(value, (int, float)) else ""


def _number(value: Any) -> str:
    return f"{value:g}" if isinstance(value, (int, float)) else str(value)


def _badge(status: str | None) -> str:
    fill, stroke = STATUS_COLORS.get(status, STATUS_COLORS[None])
    return (
        f'<span style="background:{fill};border:1px solid {stroke};border-radius:3px;'
        f'padding:0 6px">{_esc(status or "")}</span>'
    )


# --- the DAG as SVG -----------------------------------------------------------------------------


def dag_svg(
    steps: Sequence[Mapping[str, Any]],
    statuses: Mapping[str, str] | None = None,
    cached: Sequence[str] = (),
) -> str:
    """The pipeline's steps as an SVG graph, top to bottom, one row per depth.

    `steps`: dicts with "name" and "after" (names of the steps before it), in pipeline order;
    `statuses`: step name -> run status, to colour each step as a run left it.
    """
    names = [str(s["name"]) for s in steps]
    after = {str(s["name"]): [str(a) for a in s.get("after") or [] if a in names] for s in steps}
    depth: dict[str, int] = {}
    for name in names:  # pipeline order is a topological order
        depth[name] = 1 + max((depth.get(a, 0) for a in after[name]), default=-1)
    rows: dict[int, list[str]] = {}
    for name in names:
        rows.setdefault(depth[name], []).append(name)
    gap, height, row_height, margin = 16, 30, 60, 10
    widths = {n: min(max(len(_label(n)) * 7 + 24, 80), 220) for n in names}
    row_widths = {d: sum(widths[n] for n in r) + gap * (len(r) - 1) for d, r in rows.items()}
    width = max(row_widths.values(), default=0) + 2 * margin
    total_height = len(rows) * row_height - (row_height - height) + 2 * margin
    boxes: dict[str, tuple[float, float]] = {}  # name -> (center x, top y)
    for d, row in rows.items():
        x = margin + (width - 2 * margin - row_widths[d]) / 2
        for name in row:
            boxes[name] = (x + widths[name] / 2, margin + d * row_height)
            x += widths[name] + gap
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{total_height}" '
        f'viewBox="0 0 {width:.0f} {total_height}" font-family="sans-serif" font-size="12" '
        'role="img" aria-label="pipeline DAG">',
        '<defs><marker id="cellpipe-arrow" viewBox="0 0 10 10" refX="10" refY="5" '
        'markerWidth="7" markerHeight="7" orient="auto-start-reverse">'
        '<path d="M 0 0 L 10 5 L 0 10 z" fill="#6b7280"/></marker></defs>',
    ]
    for name in names:
        x2, y2 = boxes[name]
        for parent in after[name]:
            x1, top = boxes[parent]
            y1 = top + height
            bend = (y2 - y1) / 2
            parts.append(
                f'<path d="M {x1:.1f} {y1} C {x1:.1f} {y1 + bend}, {x2:.1f} {y2 - bend}, '
                f'{x2:.1f} {y2}" fill="none" stroke="#6b7280" stroke-width="1.2" '
                'marker-end="url(#cellpipe-arrow)"/>'
            )
    for name in names:
        x, y = boxes[name]
        status = (statuses or {}).get(name)
        fill, stroke = STATUS_COLORS.get(status, STATUS_COLORS[None])
        dash = ' stroke-dasharray="4 2"' if name in cached else ""
        tip = f"{name}: {status}" if status else name
        parts.append(
            f'<g><title>{_esc(tip)}</title><rect x="{x - widths[name] / 2:.1f}" y="{y}" '
            f'width="{widths[name]}" height="{height}" rx="6" fill="{fill}" stroke="{stroke}" '
            f'stroke-width="1.5"{dash}/><text x="{x:.1f}" y="{y + height / 2 + 4}" '
            f'text-anchor="middle">{_esc(_label(name))}</text></g>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _label(name: str) -> str:
    return name if len(name) <= _MAX_LABEL else name[: _MAX_LABEL - 1] + "…"


# --- views ------------------------------------------------------------------------------------


class View:
    """JSON shown as HTML in a notebook and as text elsewhere; `data` is the JSON."""

    def __init__(self, data: Any, notebook: str | None = None) -> None:
        self.data = data
        self.notebook = notebook  # "PATH, saved ..." (KernelNotebook.describe), if any

    def _repr_html_(self) -> str:
        return self._header_html() + self.html()

    def __repr__(self) -> str:
        return self.text()

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(self.text())

    def _header_html(self) -> str:
        if not self.notebook:
            return ""
        return f'<div style="color:#6b7280;font-size:12px">notebook: {_esc(self.notebook)}</div>'

    def html(self) -> str:
        return f"<pre>{_esc(json.dumps(self.data, indent=2, default=str))}</pre>"

    def text(self) -> str:
        return json.dumps(self.data, indent=2, default=str)


class PipelineView(View):
    """`%cellpipe compile`: the steps, their data flow and resources, the DAG, parameters."""

    @property
    def steps(self) -> list[dict[str, Any]]:
        steps: list[dict[str, Any]] = self.data.get("steps") or []
        return steps

    def html(self) -> str:
        data = self.data
        parts = [
            f"<div><b>pipeline {_esc(data.get('pipeline', ''))}</b>: {len(self.steps)} steps"
            + (f" &rarr; <code>{_esc(data['output'])}</code>" if data.get("output") else "")
            + (f"<br>image <code>{_esc(data['image'])}</code>" if data.get("image") else "")
            + "</div>"
        ]
        parts.extend(_messages_html(data.get("errors") or [], "error", "#dc2626"))
        if self.steps:
            parts.append(dag_svg(self.steps))
            parts.append(
                table(
                    ["step", "task", "after", "receives", "hands on", "resources"],
                    [
                        [
                            s["name"],
                            s.get("task", ""),
                            ", ".join(s.get("after") or []),
                            ", ".join(s.get("receives") or []),
                            ", ".join(s.get("hands_on") or []),
                            _resources(s.get("resources") or {}),
                        ]
                        for s in self.steps
                    ],
                )
            )
        parameters = data.get("parameters") or {}
        if parameters:
            types = data.get("parameter_types") or {}
            parts.append(
                table(
                    ["parameter", "type", "default"],
                    [[n, types.get(n, ""), json.dumps(v)] for n, v in parameters.items()],
                )
            )
        if data.get("metrics"):
            parts.append(f"<div>metrics: {_esc(', '.join(data['metrics']))}</div>")
        parts.extend(_messages_html(data.get("notes") or [], "note", "#2563eb"))
        parts.extend(_messages_html(data.get("warnings") or [], "warning", "#b45309"))
        return "".join(parts)

    def text(self) -> str:
        data = self.data
        lines = [f"pipeline {data.get('pipeline', '')!r}: {len(self.steps)} steps"]
        if data.get("output"):
            lines[0] += f" -> {data['output']}"
        for s in self.steps:
            after = f" after {', '.join(s['after'])}" if s.get("after") else ""
            receives = f"; receives {', '.join(s['receives'])}" if s.get("receives") else ""
            resources = _resources(s.get("resources") or {})
            lines.append(
                f"  {s['name']} [{s.get('task', '')}]{after}{receives}"
                + (f"; {resources}" if resources else "")
            )
        for kind in ("errors", "notes", "warnings"):
            for message in data.get(kind) or []:
                lines.append(f"{kind[:-1]}: {_message_text(message)}")
        return "\n".join(lines)


def _resources(resources: Mapping[str, Any]) -> str:
    words = []
    gpu = resources.get("gpu")
    if isinstance(gpu, Mapping):
        words.append(f"{gpu.get('count')} GPU" + (f" {gpu['type']}" if gpu.get("type") else ""))
    for key, value in resources.items():
        if key == "gpu" or value in (None, "", {}):
            continue
        if isinstance(value, Mapping):  # {"request": Q, "limit": Q}
            request, limit = value.get("request"), value.get("limit")
            shown = request if request == limit or not limit else f"{request or '-'}/{limit}"
            words.append(f"{key} {shown}")
        else:
            words.append(f"{key} {value}")
    return ", ".join(words)


def _message_text(message: Any) -> str:
    if not isinstance(message, Mapping):
        return str(message)
    where = []
    if message.get("cell_index") is not None:
        where.append(f"cell {int(message['cell_index']) + 1}")
    if message.get("step"):
        where.append(f"step {message['step']!r}")
    prefix = f"{' '.join(where)}: " if where else ""
    return f"{prefix}{message.get('message', '')}"


def _messages_html(messages: Sequence[Any], kind: str, color: str) -> list[str]:
    if not messages:
        return []
    items = "".join(f"<li>{_esc(_message_text(m))}</li>" for m in messages)
    count = f"{len(messages)} {kind}{'' if len(messages) == 1 else 's'}"
    return [f'<div style="color:{color}">{count}:<ul>{items}</ul></div>']


class RunView(View):
    """A run (`%cellpipe run`, `status`): its steps with status and time, metrics, outputs."""

    def __init__(
        self,
        data: Any,
        notebook: str | None = None,
        edges: Sequence[Mapping[str, Any]] | None = None,
    ) -> None:
        super().__init__(data, notebook)
        self.edges = edges if edges is not None else _edges_from_bundle(data.get("outputs"))

    @property
    def run_id(self) -> str:
        return str(self.data.get("run_id", ""))

    @property
    def status(self) -> str:
        return str(self.data.get("status", ""))

    @property
    def metrics(self) -> dict[str, float]:
        metrics: dict[str, float] = self.data.get("metrics") or {}
        return metrics

    def html(self) -> str:
        data = self.data
        steps: dict[str, Any] = data.get("steps") or {}
        parts = [
            f"<div><b>run {_esc(self.run_id)}</b> {_badge(self.status)}"
            + (f" engine {_esc(data['engine'])}" if data.get("engine") else "")
            + "</div>"
        ]
        if data.get("error"):
            parts.append(f'<pre style="color:#dc2626">{_esc(data["error"])}</pre>')
        if self.edges:
            statuses = {name: s.get("status", "") for name, s in steps.items()}
            cached = [name for name, s in steps.items() if s.get("cached")]
            parts.append(dag_svg(self.edges, statuses, cached))
        parts.append(steps_table(steps))
        if self.metrics:
            parts.append(
                table(["metric", "value"], [[k, _number(v)] for k, v in self.metrics.items()])
            )
        if data.get("links"):
            links = " ".join(
                f'<a href="{_esc(url)}" target="_blank">{_esc(label)}</a>'
                for label, url in data["links"].items()
            )
            parts.append(f"<div>{links}</div>")
        if data.get("outputs"):
            parts.append(f"<div>outputs: <code>{_esc(data['outputs'])}</code></div>")
        return "".join(parts)

    def text(self) -> str:
        lines = [f"run {self.run_id}: {self.status}"]
        for name, step in (self.data.get("steps") or {}).items():
            mark = "cached" if step.get("cached") else _seconds(step.get("seconds"))
            lines.append(f"  {step.get('status', ''):<9} {name} {mark}".rstrip())
        for name, value in self.metrics.items():
            lines.append(f"  {name} = {_number(value)}")
        if self.data.get("error"):
            lines.append(f"error: {self.data['error']}")
        if self.data.get("outputs"):
            lines.append(f"outputs: {self.data['outputs']}")
        return "\n".join(lines)


def steps_table(steps: Mapping[str, Mapping[str, Any]]) -> str:
    """Each step of a run with its status, time and first line of error."""
    return table(
        ["step", "status", "time", "error"],
        [
            [
                _esc(name),
                _badge(s.get("status")) + (" cached" if s.get("cached") else ""),
                _seconds(s.get("seconds")),
                _esc((s.get("error") or "").splitlines()[0] if s.get("error") else ""),
            ]
            for name, s in steps.items()
        ],
        raw=True,
    )


def _edges_from_bundle(outputs: Any) -> list[dict[str, Any]]:
    """Steps and their `after` (by display name) from a run's bundle.json, if it is here."""
    if not isinstance(outputs, str):
        return []
    path = Path(outputs) / "bundle.json"
    try:
        bundle = json.loads(path.read_text())
    except (OSError, ValueError):
        return []
    steps = bundle.get("steps") or {}
    names = {task: spec.get("name", task) for task, spec in steps.items()}
    return [
        {"name": spec.get("name", task), "after": [names.get(a, a) for a in spec.get("after", [])]}
        for task, spec in steps.items()
    ]


class RunsView(View):
    """A list of runs (`%cellpipe runs`)."""

    @property
    def runs(self) -> list[Mapping[str, Any]]:
        data = self.data
        runs = data.get("runs") if isinstance(data, Mapping) else data
        return [r for r in runs or [] if isinstance(r, Mapping)]

    def html(self) -> str:
        rows = [
            [
                _esc(r.get("run_id", "")),
                _esc(r.get("pipeline", "")),
                _esc(r.get("engine", "")),
                _badge(r.get("status")),
                _esc(_when(r.get("created"))),
                _esc(", ".join(f"{k}={_number(v)}" for k, v in (r.get("metrics") or {}).items())),
            ]
            for r in self.runs
        ]
        headers = ["run", "pipeline", "engine", "status", "created", "metrics"]
        return table(headers, rows, raw=True) if rows else "<div>no runs</div>"

    def text(self) -> str:
        return (
            "\n".join(
                f"{r.get('run_id', '')}  {r.get('status', ''):<9} {r.get('engine', '')} "
                f"{r.get('pipeline', '')}"
                for r in self.runs
            )
            or "no runs"
        )


def _when(value: Any) -> str:
    if isinstance(value, (int, float)):
        return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(value))
    return str(value or "")


class GpusView(View):
    """The GPU inventory (`%cellpipe gpus`): each type, its resource, total and free."""

    def html(self) -> str:
        data = self.data
        types = data.get("types") or []
        rows = [
            [
                t.get("name") or "(no type label)",
                t.get("display_name", ""),
                t.get("resource", ""),
                "?" if t.get("total") is None else t["total"],
                "?" if t.get("free") is None else t["free"],
                ", ".join(n.get("name", "") for n in t.get("nodes") or []),
            ]
            for t in types
        ]
        parts = [f"<div>GPUs from the {_esc(data.get('source', ''))}</div>"]
        parts.append(table(["type", "name", "resource", "total", "free", "nodes"], rows))
        if data.get("message"):
            parts.append(f'<div style="color:#b45309">{_esc(data["message"])}</div>')
        return "".join(parts)

    def text(self) -> str:
        lines = [f"GPUs from the {self.data.get('source', '')}"]
        for t in self.data.get("types") or []:
            lines.append(
                f"  {t.get('name') or '(no type label)'} ({t.get('resource', '')}): "
                f"total {t.get('total', '?')}, free {t.get('free', '?')}"
            )
        if self.data.get("message"):
            lines.append(str(self.data["message"]))
        return "\n".join(lines)


def view_for(command: str, data: Any, notebook: str | None = None) -> View:
    """The view that suits a command's JSON (by its shape, so new commands fit too)."""
    if isinstance(data, Mapping):
        if "run_id" in data:
            return RunView(data, notebook)
        if isinstance(data.get("steps"), list) and "pipeline" in data:
            return PipelineView(data, notebook)
        if "runs" in data:
            return RunsView(data, notebook)
        if "types" in data and "source" in data:
            return GpusView(data, notebook)
    if isinstance(data, list) and all(isinstance(r, Mapping) and "run_id" in r for r in data):
        return RunsView(data, notebook)
    return View(data, notebook)


# --- a run as it goes -------------------------------------------------------------------------


class LiveRun:
    """The steps of a running pipeline, redrawn in place in a notebook (a display handle).

    An engine listener: called with ("started" | "finished" | "cached", step record).
    """

    def __init__(self, step_names: Sequence[str], display: Any) -> None:
        self.steps: dict[str, dict[str, Any]] = {
            name: {"status": "Pending", "cached": False, "seconds": None} for name in step_names
        }
        self.started = time.monotonic()
        self.finished: float | None = None
        self.handle = display(self, display_id=True)

    def __call__(self, event: str, step: Any) -> None:
        entry = self.steps.setdefault(step.name, {})
        entry.update(
            status=step.status, cached=bool(step.cached), seconds=step.seconds, error=step.error
        )
        self._redraw()

    def close(self) -> None:
        """The run ended: the table gives way to one line (the result shows the steps)."""
        self.finished = time.monotonic()
        self._redraw()

    def _redraw(self) -> None:
        if self.handle is not None:
            self.handle.update(self)

    def _done(self) -> str:
        done = sum(s["status"] in FINISHED for s in self.steps.values())
        elapsed = (self.finished or time.monotonic()) - self.started
        return f"{done} of {len(self.steps)} steps done ({elapsed:.1f} s)"

    def _repr_html_(self) -> str:
        line = f"<div>{self._done()}</div>"
        return line if self.finished is not None else line + steps_table(self.steps)

    def __repr__(self) -> str:
        if self.finished is not None:
            return self._done()
        return "\n".join(f"  {s['status']:<9} {name}" for name, s in self.steps.items())
