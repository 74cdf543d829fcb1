"""`python -m cellpipe.server_ext [--help-all]`: a Jupyter server with the cellpipe API.

`jupyter server --help-all` lists only the server's own classes; `--help-all` here shows the
c.CellPipe options too.
"""

from .app import main

if __name__ == "__main__":
    main()
