"""Entry point of the ``ldct`` console script.

Logging is configured here and only here; library code logs through :mod:`logging`.
Known errors (:class:`pipeline.errors.LdctError`) become one clear line on stderr and a
documented exit code (:class:`pipeline.errors.ExitCode`), never a traceback; so do operating-
system errors (read-only or full output folder, permission denied: exit 4, RESOURCE).
"""

from __future__ import annotations

import errno
import importlib
import logging
import pkgutil
import sys

import typer

from pipeline import __version__
from pipeline.cli import commands
from pipeline.errors import ExitCode, LdctError
from pipeline.utils.text import printable

app = typer.Typer(
    name="ldct",
    help="Low-dose CT denoising: batch-denoise DICOM studies, train denoisers, write QA reports.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"ldct-pipeline {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    verbose: int = typer.Option(0, "--verbose", "-v", count=True, help="More log output (-vv)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Only warnings and errors."),
    version: bool = typer.Option(
        False, "--version", callback=_version_callback, is_eager=True, help="Show version."
    ),
) -> None:
    setup_logging(verbose=verbose, quiet=quiet)


def setup_logging(verbose: int = 0, quiet: bool = False) -> None:
    """Configure the root logger for CLI use (rich handler on stderr)."""
    from rich.console import Console
    from rich.logging import RichHandler

    level = logging.WARNING if quiet else (logging.DEBUG if verbose > 1 else logging.INFO)
    if verbose == 1 and not quiet:
        level = logging.INFO
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    handler = RichHandler(
        console=Console(stderr=True),
        show_path=verbose > 1,
        show_time=verbose > 0,
        markup=False,
        rich_tracebacks=False,
    )
    handler.setFormatter(logging.Formatter("%(message)s"))
    root.addHandler(handler)
    root.setLevel(level)
    # third-party chatter stays at WARNING unless -vv
    for noisy in ("matplotlib", "PIL", "monai", "pydicom", "numba", "fsspec"):
        logging.getLogger(noisy).setLevel(logging.DEBUG if verbose > 1 else logging.WARNING)


def _register_commands() -> None:
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        module.register(app)


_register_commands()


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit code (also used by tests)."""
    try:
        rc = app(args=argv, standalone_mode=False)
    except LdctError as exc:
        logging.getLogger("ldct").error("%s", printable(exc))
        return exc.exit_code
    except OSError as exc:  # read-only or full output folder, permissions, vanished paths
        logging.getLogger("ldct").error("%s", printable(os_error_line(exc)))
        return ExitCode.RESOURCE
    except typer.Exit as exc:
        return int(exc.exit_code or 0)
    except typer.Abort:
        typer.echo("Aborted.", err=True)
        return 130
    except KeyboardInterrupt:
        typer.echo("Interrupted.", err=True)
        return 130
    except Exception as exc:  # click usage errors
        import click

        if isinstance(exc, click.exceptions.ClickException):
            exc.show()
            return ExitCode.USAGE
        raise
    return rc if isinstance(rc, int) else ExitCode.OK


def os_error_line(exc: OSError) -> str:
    """One line for an operating-system error: what, on which path, and what to do."""
    what = exc.strerror or str(exc) or type(exc).__name__
    where = " -> ".join(str(f) for f in (exc.filename, exc.filename2) if f)
    hint = {
        errno.ENOSPC: "free space on that file system or choose another --out",
        errno.EDQUOT: "free space on that file system or choose another --out",
        errno.EROFS: "the file system is read-only: choose a writable --out",
        errno.EACCES: "check the permissions or choose another folder",
        errno.EPERM: "check the permissions or choose another folder",
    }.get(exc.errno or 0, "")
    return f"{where + ': ' if where else ''}{what}" + (f" ({hint})" if hint else "")


def run() -> None:  # pragma: no cover - console script shim
    sys.exit(main())


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
