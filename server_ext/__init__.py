"""The jupyter-server extension: REST handlers under /cellpipe/api, thin over converter + launcher."""
