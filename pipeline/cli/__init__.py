"""The ``ldct`` command line: a thin typer layer over the stages.

Module map:

* ``main`` -- the entry point (:data:`app`, ``ldct(argv) -> exit code``), logging, error lines.
* ``commands/`` -- one module per subcommand; each imports its stage inside the command, so
  ``ldct --help`` loads no stage.
* ``docgen`` -- docs/cli.md generated from the CLI itself.

The names below are the stage's public face, imported lazily on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pipeline._lazy import attach

if TYPE_CHECKING:
    from pipeline.cli.main import app
    from pipeline.cli.main import main as ldct

_EXPORTS: dict[str, tuple[str, ...]] = {
    "main": ("app", "ldct=main"),
}

__all__ = [
    "app",
    "ldct",
]

if not TYPE_CHECKING:
    __getattr__, __dir__ = attach(__name__, globals(), _EXPORTS)
