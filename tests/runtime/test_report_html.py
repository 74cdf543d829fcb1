"""A step's report page (runtime/report_html.py): what the KFP UI shows of a step, safe to
open whatever the step printed, and read back into exactly the report it was made from."""

from __future__ import annotations

import base64
import json
from html.parser import HTMLParser
from typing import Any

import pytest

from cellpipe.runtime.report_html import NoReport, read_cells, render, render_output

PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n fake pixels").decode()
HOSTILE = "</script><script>alert(1)</script><img src=x onerror=alert(2)>&amp;\u2028"


class Tags(HTMLParser):
    """Every element a browser would make of the page, and the text of each script."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.scripts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.scripts.append(data)


def parsed(page: str) -> Tags:
    tags = Tags()
    tags.feed(page)
    return tags


def report(*outputs: dict[str, Any], failed: bool = False) -> dict[str, Any]:
    return {
        "printed": "",
        "seconds": 0.25,
        "status": "Failed" if failed else "Succeeded",
        "error": HOSTILE if failed else None,
        "prelude": [{"index": 0, "id": "c0", "outputs": [], "seconds": 0.1, "failed": False}],
        "cells": [
            {"index": 2, "id": "c2", "outputs": list(outputs), "seconds": 0.01, "failed": failed}
        ],
    }


def test_the_page_gives_back_exactly_the_report_it_was_made_from() -> None:
    # Given a step that showed every kind of output, with text that would end a script
    shown = report(
        {"output_type": "stream", "name": "stdout", "text": f"printed {HOSTILE}\n"},
        {
            "output_type": "display_data",
            "data": {"text/html": "<table><tr><td>1</td></tr></table>", "text/plain": HOSTILE},
            "metadata": {"note": HOSTILE},
        },
        {"output_type": "display_data", "data": {"image/png": PNG}, "metadata": {}},
        {"output_type": "execute_result", "execution_count": 3, "data": {"text/plain": "42"}},
        {"output_type": "error", "ename": "ValueError", "evalue": HOSTILE, "traceback": [HOSTILE]},
    )
    # When it is drawn and read back
    page = render(shown, "load </script>", {0: "import x", 2: f"print({HOSTILE!r})"}, "n.ipynb")
    # Then the report is the same, to the last character
    assert read_cells(page) == json.loads(json.dumps(shown))
    # and the JSON cannot end its script element: no <, > or & in it
    data = page.split('id="cellpipe-cells">', 1)[1].split("</script>", 1)[0]
    assert not set("<>&") & set(data)


def test_user_text_is_escaped_everywhere_but_html_outputs() -> None:
    page = render(
        report(
            {"output_type": "stream", "name": "stderr", "text": HOSTILE},
            {"output_type": "display_data", "data": {"text/markdown": HOSTILE}, "metadata": {}},
            {"output_type": "display_data", "data": {"text/plain": HOSTILE}, "metadata": {}},
            {"output_type": "display_data", "data": {"image/png": HOSTILE}, "metadata": {}},
            {"output_type": "error", "ename": "E", "evalue": HOSTILE, "traceback": [HOSTILE]},
            failed=True,
        ),
        f"step {HOSTILE}",
        {2: HOSTILE},
        f"{HOSTILE}.ipynb",
    )
    tags = parsed(page)
    # one script (the report's JSON), no image the user's text made, no event handler
    assert [t for t, _ in tags.tags if t == "script"] == ["script"]
    assert tags.tags[[t for t, _ in tags.tags].index("script")][1]["type"] == "application/json"
    assert not any(t == "img" for t, _ in tags.tags)
    assert not any(k.startswith("on") for _, attrs in tags.tags for k in attrs)
    assert HOSTILE not in page.split("</script>", 1)[1]  # only escaped after the JSON


def test_html_outputs_are_as_they_are_and_images_are_data_urls() -> None:
    svg = '<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'
    assert (
        render_output(
            {"output_type": "display_data", "data": {"text/html": "<b>bold</b>", "text/plain": "b"}}
        )
        == '<div class="html"><b>bold</b></div>'
    )
    png = parsed(render_output({"output_type": "display_data", "data": {"image/png": PNG}}))
    assert png.tags == [("img", {"src": f"data:image/png;base64,{PNG}", "alt": "image/png output"})]
    # an SVG is an <img> too: a script inside it does not run
    drawn = parsed(render_output({"output_type": "display_data", "data": {"image/svg+xml": svg}}))
    assert [t for t, _ in drawn.tags] == ["img"]
    src = drawn.tags[0][1]["src"] or ""
    assert base64.b64decode(src.split(",", 1)[1]).decode() == svg
    markdown = render_output({"output_type": "display_data", "data": {"text/markdown": "# *hi*"}})
    assert markdown == '<pre class="markdown"># *hi*</pre>'


def test_the_report_is_the_first_one_in_the_page_whatever_an_output_holds() -> None:
    decoy = '<script type="application/json" id="cellpipe-cells">{"status": "decoy"}</script>'
    page = render(
        report({"output_type": "display_data", "data": {"text/html": decoy}, "metadata": {}}),
        "s",
    )
    assert read_cells(page)["status"] == "Succeeded"


def test_a_page_without_a_report_is_said_so() -> None:
    with pytest.raises(NoReport, match="holds no cellpipe step report"):
        read_cells("<html><body>hello</body></html>")
    with pytest.raises(NoReport, match="not readable JSON"):
        read_cells('<script type="application/json" id="cellpipe-cells">{nope</script>')
