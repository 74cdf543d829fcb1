"""Errors the front doors (CLI, magics, server) share."""


class UserError(Exception):
    """A mistake the user can fix; printed as one line, never as a traceback."""
