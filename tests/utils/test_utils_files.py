"""The one atomic-publish helper: complete file or the old one, never a partial file."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.utils import files


def test_atomic_write_bytes_replaces_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "a.bin"
    files.atomic_write_bytes(target, b"old")
    files.atomic_write_bytes(target, memoryview(b"new"))
    assert target.read_bytes() == b"new"
    assert sorted(p.name for p in target.parent.iterdir()) == ["a.bin"]


def test_failed_write_keeps_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "a.txt"
    files.atomic_write_text(target, "old")
    with pytest.raises(RuntimeError), files.atomic_path(target) as tmp:
        tmp.write_text("half", encoding="utf-8")
        raise RuntimeError("writer died")
    assert target.read_text(encoding="utf-8") == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


@pytest.mark.parametrize("durable", [False, True])
def test_durable_flushes_the_directory_entry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, durable: bool
) -> None:
    flushed: list[Path] = []
    real = files.fsync_dir
    monkeypatch.setattr(files, "fsync_dir", lambda p: (flushed.append(Path(p)), real(p)))
    files.atomic_write_bytes(tmp_path / "x.dcm", b"DICM", durable=durable)
    assert flushed == ([tmp_path] if durable else [])
    assert (tmp_path / "x.dcm").read_bytes() == b"DICM"


def test_spool_store_is_published_durably(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The PACS spool stores instances through the same helper (durable)."""
    from pipeline.pacs import spool as spool_mod

    calls: list[tuple[Path, bool]] = []
    real = spool_mod.publish_file

    def spy(tmp: Path, target: Path, *, durable: bool = False) -> Path:
        calls.append((Path(target), durable))
        return real(tmp, target, durable=durable)

    monkeypatch.setattr(spool_mod, "publish_file", spy)
    sp = spool_mod.Spool(tmp_path / "spool").create()
    path = sp.store_instance("1.2.3", "1.2.3.4", b"data")
    assert calls == [(path, True)]
    assert path.read_bytes() == b"data"
    assert list(sp.d("tmp").iterdir()) == []
