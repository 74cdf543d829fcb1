"""cellpipe's predictor for KServe's model server: a model a step kept (runtime/models.py),
served with KServe's own V1 and Open Inference (V2) protocols.

    python -m cellpipe.runtime.model_server --model_dir DIR --model_name NAME \
        [--http_port P] [--host 127.0.0.1] [KServe's own model server options]

`cellpipe serve --engine local` runs it on 127.0.0.1; on the cluster it is the custom
predictor's command (formats KServe has no runtime for). It imports kserve, so nothing else
in the runtime imports this module: `pip install 'cellpipe[serve]'` where a model is served.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import kserve
from kserve import model_server as kserve_model_server
from kserve.protocol.infer_type import InferRequest
from kserve.protocol.rest import server as kserve_rest_server
from kserve.utils.utils import get_predict_input, get_predict_response

from . import models


class CellpipeModel(kserve.Model):  # type: ignore[misc]
    """A kept model of any format: KServe parses the request, the model's own library
    predicts. A frame-fitted scikit-learn model is given a frame with its columns (as it was
    fitted), so rows sent as lists predict as rows sent as objects."""

    def __init__(self, name: str, model_dir: Path) -> None:
        super().__init__(name)
        self.model_dir = model_dir
        self.model: Any = None
        self.columns: list[str] | None = None
        self.load()

    def load(self) -> bool:
        info = models.read_info(self.model_dir)
        self.model = models.load_model(self.model_dir)
        self.format = info["format"]
        self.columns = (info.get("sample") or {}).get("columns")
        self.ready = True
        return bool(self.ready)

    def predict(self, payload: dict[str, Any] | InferRequest, headers: Any = None) -> Any:
        instances = _records_frame(payload)
        if instances is None:
            instances = get_predict_input(payload, self.columns)
        if self.columns is not None and getattr(instances, "ndim", 0) == 2:
            import pandas as pd

            instances = pd.DataFrame(instances, columns=self.columns)
        return get_predict_response(payload, self._predict(instances), self.name)

    def _predict(self, instances: Any) -> Any:
        import numpy as np

        if self.format == "xgboost":
            import xgboost

            return self.model.predict(xgboost.DMatrix(instances))
        if self.format == "pytorch":
            import torch

            with torch.no_grad():
                tensor = torch.as_tensor(np.asarray(instances, dtype=np.float32))
                return self.model(tensor).numpy()
        predict = getattr(self.model, "predict", None) or self.model
        return np.asarray(predict(instances))


def _records_frame(payload: Any) -> Any:
    """V1 rows sent as objects of scalars (`{"instances": [{"sepal_length": 5.1, ...}]}`,
    what pandas' to_dict(orient="records") gives) as one frame; None for any other payload
    (KServe's get_predict_input reads each object as a frame of its own)."""
    instances = payload.get("instances") if isinstance(payload, dict) else None
    if not instances or not all(isinstance(row, dict) for row in instances):
        return None
    if any(isinstance(value, (list, dict)) for row in instances for value in row.values()):
        return None
    import pandas as pd

    return pd.DataFrame.from_records(instances)


def servable_problem(directory: Path) -> str | None:
    """Why the model in `directory` cannot be served here, or None."""
    info = models.read_info(directory)
    if info["format"] != models.CUSTOM_FORMAT:
        return None
    model = models.load_model(directory)
    if callable(getattr(model, "predict", None)) or callable(model):
        return None
    return (
        f"model {info['name']!r} is a {info.get('class', 'value')} with no predict method and "
        "is not callable; mark a fitted model, or a value with predict(rows)"
    )


def _loopback_rest_server(host: str) -> type:
    """KServe's REST server bound to `host` (KServe 0.21 binds 0.0.0.0, with no option)."""

    class BoundRESTServer(kserve_rest_server.RESTServer):  # type: ignore[misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.config.host = host
            server_type: Any = type(self.__dict__["_server"])  # uvicorn's, as KServe made it
            self._server = server_type(self.config)

    return BoundRESTServer


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(parents=[kserve_model_server.parser])
    parser.add_argument("--model_dir", required=True, type=Path)
    parser.add_argument("--host", default="0.0.0.0")
    args, _ = parser.parse_known_args(argv)
    problem = servable_problem(args.model_dir)
    if problem is not None:
        raise SystemExit(f"cellpipe: {problem}")
    model = CellpipeModel(args.model_name, args.model_dir)
    # the server of this process only: ModelServer.start builds its REST server by this name
    kserve_model_server.RESTServer = _loopback_rest_server(args.host)
    kserve.ModelServer(http_port=args.http_port, enable_grpc=False, workers=1).start([model])


if __name__ == "__main__":
    main()
