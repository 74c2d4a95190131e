"""Generate ``docs/cli.md`` from the CLI itself, so the reference cannot drift.

Run ``python -m pipeline.cli.docgen > docs/cli.md`` (``make docs-cli``); a test fails when the
committed file differs from what this prints.
"""

from __future__ import annotations

import inspect
import sys

import click
import typer

from pipeline.cli.main import app


def _param_row(param: click.Parameter) -> str:
    if isinstance(param, click.Argument):
        name = f"`{param.human_readable_name}`"
        kind = "argument" + (" (repeatable)" if param.nargs == -1 else "")
        help_text = ""
    elif isinstance(param, click.Option):
        names = [*param.opts, *param.secondary_opts]
        name = ", ".join(f"`{n}`" for n in names)
        kind = "flag" if param.is_flag else (param.metavar or param.type.name).lower()
        help_text = param.help or ""
    else:  # pragma: no cover - click has only arguments and options
        name, kind, help_text = f"`{param.name}`", "parameter", ""
    default = ""
    if (
        not isinstance(param, click.Argument)
        and param.default is not None
        and param.default is not False  # identity: 0 is a real default, False means "off"
        and param.default not in ((), [])
        and not callable(param.default)
    ):
        default = f"`{param.default}`"
    required = "yes" if param.required else ""
    cells = [name, kind, help_text.replace("|", "\\|").replace("\n", " "), default, required]
    return "| " + " | ".join(cells) + " |"


def _command_md(cmd: click.Command, path: list[str], level: int) -> list[str]:
    out = [f"{'#' * level} `{' '.join(path)}`", ""]
    doc = inspect.cleandoc(cmd.help or "")
    if doc:
        out += [doc.split("\f")[0].strip(), ""]
    params = [p for p in cmd.params if not getattr(p, "hidden", False) and p.name != "help"]
    if params:
        out += ["| parameter | kind | help | default | required |", "|---|---|---|---|---|"]
        out += [_param_row(p) for p in params]
        out.append("")
    if isinstance(cmd, click.Group):
        for name in sorted(cmd.commands):
            out += _command_md(cmd.commands[name], [*path, name], min(level + 1, 4))
    return out


def render() -> str:
    """The CLI reference as Markdown."""
    root = typer.main.get_command(app)
    lines = [
        "# CLI reference",
        "",
        "Generated from the CLI by `make docs-cli` (`python -m pipeline.cli.docgen`); do not edit.",
        "",
        "Exit codes: 0 ok; 1 finished with per-item failures (see the manifest); 2 usage or config"
        " error; 3 input unusable (nothing readable); 4 missing or unusable resource (weights,"
        " checkpoint, an output folder that is read-only, full or not permitted).",
        "",
    ]
    lines += _command_md(root, ["ldct"], 2)
    return "\n".join(lines).rstrip() + "\n"


if __name__ == "__main__":  # pragma: no cover
    sys.stdout.write(render())
