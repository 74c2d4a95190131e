"""Docs cannot drift: the CLI reference equals what the CLI prints, and every link resolves."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
DOCS = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md")])


def test_cli_reference_is_generated_from_the_cli():
    from pipeline.cli.docgen import render

    committed = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    assert committed == render(), "docs/cli.md is stale: run `make docs-cli`"


def test_every_command_is_documented():
    import typer

    from pipeline.cli.main import app

    group = typer.main.get_command(app)
    text = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    for name in group.commands:  # type: ignore[attr-defined]
        assert f"`ldct {name}`" in text


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_relative_links_resolve(doc: Path):
    text = doc.read_text(encoding="utf-8")
    text = re.sub(r"```.*?```", "", text, flags=re.S)  # links inside code blocks are examples
    for target in LINK.findall(text):
        if re.match(r"^[a-z]+:", target) or target.startswith("#"):
            continue
        path = (doc.parent / target.split("#", 1)[0]).resolve()
        assert path.exists(), f"{doc.name}: broken link {target}"
