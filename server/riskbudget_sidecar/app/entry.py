"""The `riskbudget` console script, which makes a SIGHUP harmless from its first line on.

`riskbudget serve` reloads its config on SIGHUP, but installs that handler only once its imports
(a second or more) are done and the config is read; until then SIGHUP's default action ended the
process silently (exit 129). So for `serve` SIGHUP is ignored here, before any import: a SIGHUP
before the config is read asks for nothing the start does not do anyway. The other commands keep
the default (a hang-up ends `riskbudget status --watch`), and importing the package changes no
signal handling.
"""

from __future__ import annotations

import signal
import sys


def main() -> int:
    if sys.argv[1:2] == ["serve"]:
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
    from .cli import main as run_command

    return run_command()
