"""The jupyter-server extension: REST handlers under /cellpipe/api, thin over the launcher.

Imports nothing heavy: jupyter-server loads the extension from `cellpipe.server_ext.app`.
"""

API_NAMESPACE = "cellpipe/api"  # under the server's base_url; the sidebar uses the same
