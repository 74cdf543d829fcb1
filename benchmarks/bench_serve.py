"""Serving speed (issue 19): KServe's model server here (`cellpipe serve --engine local`) for a
small scikit-learn model, beside the estimator's own predict called in process.

The model is kept as a step keeps it (runtime/models.py: model.joblib and its record) and
served by cellpipe's predictor on KServe's model server on 127.0.0.1, in the serve
environment (tests/serve_env.py; kserve pins pandas < 3). One client sends V1 requests of one
row, one after the other over one keep-alive connection; each round gives requests per
second and its p50 and p99 latency. In process: `estimator.predict` of the same one-row
frame. Figures through measure.py (min, median, max, spread over the rounds).
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
from measure import Figure, Load  # noqa: E402

ROUNDS = 7
REQUESTS = 400  # per round


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def one_round(call: object, rows: int) -> tuple[float, float, float]:
    """(calls per second, p50 ms, p99 ms) of `rows` calls one after the other."""
    latencies = []
    started = time.perf_counter()
    for _ in range(rows):
        begun = time.perf_counter()
        call()  # type: ignore[operator]
        latencies.append((time.perf_counter() - begun) * 1000)
    seconds = time.perf_counter() - started
    return rows / seconds, percentile(latencies, 0.5), percentile(latencies, 0.99)


def main() -> None:
    import pandas as pd
    import requests
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    from cellpipe.launcher.serving import (
        RunModel,
        free_port,
        start_model_server,
        stop_process,
        wait_ready,
    )
    from cellpipe.runtime.models import save_model
    from tests.serve_env import serve_python

    load = Load.now()
    iris = load_iris(as_frame=True)
    estimator = LogisticRegression(max_iter=300).fit(iris.data, iris.target)
    row = iris.data.iloc[[0]]
    body = {"instances": row.to_dict(orient="records")}
    with tempfile.TemporaryDirectory() as folder:
        directory = Path(folder) / "cellpipe_model_clf"
        saved = save_model("clf", estimator, directory, {"X": iris.data})
        model = RunModel("clf", "train", saved.format, saved.versions, directory)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        log = Path(folder) / "server.log"
        process = start_model_server(model, "clf", port, log, serve_python())
        try:
            wait_ready(url, "clf", process, log)
            session = requests.Session()
            target = f"{url}/v1/models/clf:predict"

            def served() -> None:
                answer = session.post(target, json=body, timeout=10)
                assert answer.json()["predictions"] == [0]

            def in_process() -> None:
                assert estimator.predict(pd.DataFrame(row)).tolist() == [0]

            one_round(served, 50)  # warm: connection, first predictions
            server = [one_round(served, REQUESTS) for _ in range(ROUNDS)]
            here = [one_round(in_process, REQUESTS) for _ in range(ROUNDS)]
        finally:
            stop_process(process.pid)
            process.wait(timeout=30)
    print(f"serving a scikit-learn LogisticRegression (iris), one row a request, {REQUESTS}")
    print(f"requests a round, {ROUNDS} rounds, one client, keep-alive (V1 protocol)")
    for label, rounds in (("KServe model server here", server), ("estimator.predict", here)):
        print(Figure(f"{label}: calls/s", [r[0] for r in rounds], "/s").line())
        print(Figure(f"{label}: p50 latency", [r[1] for r in rounds], "ms").line())
        print(Figure(f"{label}: p99 latency", [r[2] for r in rounds], "ms").line())
    overhead = statistics.median(r[1] for r in server) - statistics.median(r[1] for r in here)
    print(
        f"   the server adds {overhead:.2f} ms to a prediction at the median (HTTP, JSON, KServe)"
    )
    print(load.line())


if __name__ == "__main__":
    main()
