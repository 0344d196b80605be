"""The ``tuner`` command: click commands that parse, call the core and print with rich.

- :mod:`tuner.cli.app`: the command group, one ``error:`` line per mistake, the console script.
- :mod:`tuner.cli.optimize`: ``tuner optimize``, its options built from :mod:`tuner.study.options`.
- :mod:`tuner.cli.reading`: ``tuner best`` and ``tuner trials``.
- :mod:`tuner.cli.after`: ``tuner reproduce``, ``report``, ``dashboard`` and ``export``.
- :mod:`tuner.cli.plugins`: ``tuner plugins``.
- :mod:`tuner.cli.progress`: the live view of a running study.
- :mod:`tuner.cli.views`: trial tables and the best-vs-reference panel.

Only this package imports rich.
"""

from tuner.cli import after, optimize, plugins, reading  # noqa: F401  (each registers its commands)
from tuner.cli.app import app, console, main

__all__ = ["app", "console", "main"]
