"""A step's report as an HTML page: what the KFP UI shows of a step, and what the executed
notebook of a Kubeflow run is assembled from.

Each step component declares an HTML output (REPORT_OUTPUT, `kfp.dsl.HTML`): its cells, each
with its source and its outputs rendered, the way the notebook shows them. The page also holds
the step's report itself (runtime/step.py REPORT_FILE: every cell's nbformat outputs) as JSON in
`<script type="application/json" id="cellpipe-cells">`, first in the page, so `read_cells` gives
back exactly what the step kept, and the executed notebook is built from this artifact alone.

The page is safe to open: every text a user or a step wrote is escaped, except outputs that are
HTML by their own mime type (text/html, shown as Jupyter shows them). Images are data: URLs
(SVG too, as an <img>, so no script in it runs); the JSON escapes `<`, `>` and `&`, so no text
in it can end its script element.
"""

from __future__ import annotations

import base64
import html
import json
import re
from typing import Any

REPORT_OUTPUT = "cellpipe_report"  # the output's name in every step component
REPORT_TYPE = "system.HTML@0.0.1"  # kfp.dsl.HTML
_DATA_ID = "cellpipe-cells"
_DATA = re.compile(r'<script type="application/json" id="cellpipe-cells">(?P<json>[^<]*)</script>')
_BASE64 = re.compile(r"[A-Za-z0-9+/=\s]*")
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)")
_STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 1em 2em; color: #222; }
h1 { font-size: 1.3em; } .failed { color: #b00020; }
.cell { border-left: 3px solid #ccc; margin: 1em 0; padding-left: .8em; }
.cell.failed { border-left-color: #b00020; }
.meta { color: #777; font-size: .85em; }
pre { margin: .3em 0; white-space: pre-wrap; word-break: break-word; }
pre.source { background: #f5f5f5; padding: .5em; }
pre.stderr { background: #fff0f0; } pre.error { background: #fdd; }
.output img { max-width: 100%; }
"""


class NoReport(ValueError):
    """The page holds no step report (not a page cellpipe wrote, or a damaged one)."""


def _json_for_script(data: Any) -> str:
    """JSON that no text in it can end or open markup with: `<`, `>`, `&` as \\u escapes."""
    text = json.dumps(data, default=repr, ensure_ascii=False)
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")


def _text(value: Any) -> str:
    text = "".join(value) if isinstance(value, list) else str(value)
    return _ANSI.sub("", text)


def _pre(value: Any, kind: str = "") -> str:
    classes = f' class="{kind}"' if kind else ""
    return f"<pre{classes}>{html.escape(_text(value))}</pre>"


def _image(mime: str, data: Any) -> str | None:
    text = _text(data)
    if mime == "image/svg+xml":
        text = base64.b64encode(text.encode("utf-8")).decode("ascii")
    elif not _BASE64.fullmatch(text):
        return None  # not base64: shown as text below, never put into an attribute
    return f'<img src="data:{mime};base64,{"".join(text.split())}" alt="{mime} output">'


def render_output(output: dict[str, Any]) -> str:
    """One nbformat output as the notebook shows it (the richest kind it carries)."""
    kind = output.get("output_type")
    if kind == "stream":
        name = "stderr" if output.get("name") == "stderr" else "stdout"
        return _pre(output.get("text", ""), name)
    if kind == "error":
        lines = output.get("traceback") or [f"{output.get('ename')}: {output.get('evalue')}"]
        return _pre("\n".join(_text(line) for line in lines), "error")
    data = output.get("data") or {}
    if not isinstance(data, dict):
        return _pre(repr(data))
    if "text/html" in data:
        return f'<div class="html">{_text(data["text/html"])}</div>'
    for mime in ("image/png", "image/jpeg", "image/gif", "image/svg+xml"):
        if mime in data:
            shown = _image(mime, data[mime])
            if shown is not None:
                return shown
    for mime in ("text/markdown", "text/latex"):
        if mime in data:
            return _pre(data[mime], "markdown")
    if "application/json" in data:
        return _pre(json.dumps(data["application/json"], indent=1, default=repr))
    if "text/plain" in data:
        return _pre(data["text/plain"])
    return _pre(f"[an output of {', '.join(sorted(map(str, data)))}]")


def _cell(record: dict[str, Any], source: str | None, notebook: str) -> str:
    index = record.get("index")
    failed = bool(record.get("failed"))
    seconds = record.get("seconds")
    about = f"{notebook}, cell {index + 1}" if isinstance(index, int) else "a cell"
    if isinstance(seconds, (int, float)):
        about += f" · {seconds:.3f} s"
    if failed:
        about += " · failed"
    parts = [
        f'<div class="cell{" failed" if failed else ""}">',
        f'<div class="meta">{html.escape(about)}</div>',
    ]
    if source is not None:
        parts.append(_pre(source, "source"))
    parts.extend(
        f'<div class="output">{render_output(o)}</div>'
        for o in record.get("outputs") or []
        if isinstance(o, dict)
    )
    parts.append("</div>")
    return "\n".join(parts)


def render(
    report: dict[str, Any],
    step: str,
    sources: dict[int, str] | None = None,
    notebook: str = "notebook",
) -> str:
    """The step's page: its status, the imports/functions cells folded, then its cells.
    `sources`: each cell's code by its index in the notebook (the bundle's)."""
    sources = sources or {}
    status = str(report.get("status") or "")
    failed = status == "Failed"
    heading = f"{notebook} · step {step!r}: {status}"
    seconds = report.get("seconds")
    if isinstance(seconds, (int, float)):
        heading += f" in {seconds:.2f} s"
    parts = [
        "<!DOCTYPE html>",
        '<html><head><meta charset="utf-8">',
        f'<script type="application/json" id="{_DATA_ID}">{_json_for_script(report)}</script>',
        f"<title>{html.escape(f'{step} · cellpipe')}</title>",
        f"<style>{_STYLE}</style>",
        "</head><body>",
        f"<h1{' class=failed' if failed else ''}>{html.escape(heading)}</h1>",
    ]
    if report.get("error"):
        parts.append(_pre(report["error"], "error"))
    prelude = [r for r in report.get("prelude") or [] if isinstance(r, dict)]
    if prelude:
        opened = any(r.get("failed") for r in prelude)  # shown open where it failed
        parts.append(f"<details{' open' if opened else ''}>")
        parts.append("<summary>imports and functions</summary>")
        parts.extend(_cell(r, sources.get(r.get("index", -1)), notebook) for r in prelude)
        parts.append("</details>")
    for record in report.get("cells") or []:
        if isinstance(record, dict):
            parts.append(_cell(record, sources.get(record.get("index", -1)), notebook))
    parts.append("</body></html>\n")
    return "\n".join(parts)


def read_cells(page: str) -> dict[str, Any]:
    """The step's report a page holds (what `render` was given); NoReport otherwise."""
    found = _DATA.search(page)
    if found is None:
        raise NoReport("the page holds no cellpipe step report")
    try:
        report = json.loads(found.group("json"))
    except ValueError as exc:
        raise NoReport(f"the page's step report is not readable JSON: {exc}") from None
    if not isinstance(report, dict):
        raise NoReport("the page's step report is not a JSON object")
    return report


def step_sources(bundle: dict[str, Any], task: str) -> dict[int, str]:
    """Each cell's code by its index: the step's cells and the imports/functions cells."""
    cells = [*bundle.get("prelude", []), *bundle["steps"][task].get("cells", [])]
    return {c["index"]: c.get("source", "") for c in cells}
