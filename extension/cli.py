"""The `cellpipe` command: argv in, the command run (cellpipe.commands over the launcher),
an exit status out.

User errors print `cellpipe: error: NOTEBOOK: cell N (step 'S'): ...` on stderr and exit 2,
without a traceback. Everything is printed through `safe_stream`: a notebook's text (step
names, messages, what its steps printed) reaches the terminal without control sequences.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from cellpipe.commands import EXIT_USER_ERROR, execute
from cellpipe.commands.arguments import build_parser
from cellpipe.commands.terminal import safe_stream
from cellpipe.launcher.errors import UserError


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    out, err = safe_stream(sys.stdout), safe_stream(sys.stderr)
    try:
        return execute(args, out, err).status
    except UserError as exc:
        print(f"cellpipe: error: {exc}", file=err)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `cellpipe run ... | head`: the reader left; say nothing more
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    sys.exit(main())
