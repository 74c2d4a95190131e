"""Find DICOM files under paths and group them into CT series, from headers only.

``scan(paths)`` walks folders recursively (any file name, with or without ``.dcm``), in a
deterministic (sorted) order, parses each header without decoding pixels
(:func:`pipeline.io.header.read_header`), and groups the CT images by
(StudyInstanceUID, SeriesInstanceUID). A series is split further where orientation, image
size or pixel spacing differ. Every file that is not used appears in ``skipped`` with a reason.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import logging
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.io.header import FileHeader, FrameRef, SkippedFile, read_header
from pipeline.io.tags import quiet, value
from pipeline.utils.progress import progress

log = logging.getLogger(__name__)

__all__ = ["LostSeries", "ScanResult", "SeriesRecord", "SkippedFile", "iter_files", "scan"]


@dataclass
class SeriesRecord:
    """One CT series (or one consistent part of a split series), ready to be read."""

    study_uid: str
    series_uid: str
    files: list[FileHeader]
    #: 1-based part number when a series was split by orientation/size/spacing, else None
    part: int | None = None
    warnings: list[str] = field(default_factory=list)
    #: files the scan saw for this series but could not use (damaged, unreadable, invalid):
    #: by their own UIDs, or (no UIDs readable) by sharing a folder with the series' files
    lost: list[SkippedFile] = field(default_factory=list)
    #: reasons the whole series must be refused (conflicting duplicates, mixed rescale)
    errors: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """True when every file the scan saw for this series is usable."""
        return not self.lost

    @property
    def frames(self) -> list[FrameRef]:
        """Every image plane, in file order (not yet sorted along the normal)."""
        return [f for fh in self.files for f in fh.frames]

    @property
    def n_slices(self) -> int:
        return sum(len(fh.frames) for fh in self.files)

    def _first(self, name: str, default: object = "") -> object:
        found = value(self.files[0].header, name)
        return default if found is None else found

    # cached: sorting and reporting thousands of series asked pydicom for these again and again
    @functools.cached_property
    def patient_id(self) -> str:
        return str(self._first("PatientID"))

    @functools.cached_property
    def patient_name(self) -> str:
        return str(self._first("PatientName"))

    @functools.cached_property
    def description(self) -> str:
        return str(self._first("SeriesDescription"))

    @functools.cached_property
    def series_number(self) -> int | None:
        value = self._first("SeriesNumber", None)
        try:
            return int(value)  # type: ignore[call-overload]
        except (TypeError, ValueError):
            return None

    @property
    def shape(self) -> tuple[int, int, int]:
        """(slices, rows, columns)."""
        return self.n_slices, self.files[0].rows, self.files[0].columns

    @property
    def transfer_syntaxes(self) -> list[str]:
        return sorted({fh.transfer_syntax for fh in self.files})

    @property
    def label(self) -> str:
        """SeriesInstanceUID, with the part number when the series was split."""
        return self.series_uid if self.part is None else f"{self.series_uid} (part {self.part})"


@dataclass
class LostSeries:
    """A series (or a folder of would-be slices) of which every file was skipped.

    ``study_uid``/``series_uid`` are "" when no header could be read (e.g. permissions);
    the files are then grouped by folder.
    """

    study_uid: str
    series_uid: str
    folder: Path
    files: list[SkippedFile]

    @property
    def label(self) -> str:
        return self.series_uid or f"unreadable files in {self.folder}"

    @property
    def reason(self) -> str:
        """One line: how many files, and the first few reasons."""
        shown = "; ".join(f"{s.path.name}: {s.reason}" for s in self.files[:3])
        more = f"; +{len(self.files) - 3} more" if len(self.files) > 3 else ""
        return f"every file of this series was skipped ({len(self.files)} file(s): {shown}{more})"


@dataclass
class ScanResult:
    """What ``scan`` found: CT series and the files it did not use (with reasons).

    Accounting: every file the scan saw is in a series, in ``skipped``, or both (a skipped
    file that may be a lost slice of a series is also in that series' ``lost``);
    ``lost_series`` are series of which no file was usable.
    """

    series: list[SeriesRecord]
    skipped: list[SkippedFile]
    n_files: int = 0
    lost_series: list[LostSeries] = field(default_factory=list)


def iter_files(paths: Iterable[str | Path]) -> Iterator[Path | SkippedFile]:
    """Every regular file under ``paths`` (recursive, sorted); problems yield a SkippedFile."""
    seen: set[str] = set()  # resolved paths as strings (cheaper than Path objects)
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            yield SkippedFile(path, "no such file or directory")
            continue
        if path.is_file():
            resolved = str(path.resolve())
            if resolved not in seen:
                seen.add(resolved)
                yield path
            continue
        if not path.is_dir():
            yield SkippedFile(path, "not a regular file or directory")
            continue
        errors: list[OSError] = []
        found = False
        for file, resolved, regular in _walk(path, str(path.resolve()), errors):
            found = True
            if resolved in seen:
                continue
            seen.add(resolved)
            if regular:
                yield file
            else:
                yield SkippedFile(file, "not a regular file (broken link or special file)")
        for err in errors:
            where = Path(err.filename) if err.filename else path
            yield SkippedFile(where, f"cannot list folder ({err.strerror or err})")
        if not found and not errors:
            yield SkippedFile(path, "empty folder (no files found)")


def _walk(folder: Path, real: str, errors: list[OSError]) -> Iterator[tuple[Path, str, bool]]:
    """(path, resolved path, is a regular file) of every file under ``folder``, like os.walk.

    Sorted, top-down, files before sub-folders; symlinked folders are not followed (as
    ``os.walk``). ``real`` is the resolved ``folder``, so only symlinked files need a
    ``resolve()`` (a syscall per path component) -- this matters for thousands of files.
    """
    try:
        with os.scandir(folder) as it:
            entries = sorted(it, key=lambda e: e.name)
    except OSError as exc:
        errors.append(exc)
        return
    subdirs = []
    for entry in entries:
        try:
            is_dir = entry.is_dir()
        except OSError:
            is_dir = False
        if is_dir:
            if not entry.is_symlink():
                subdirs.append(entry.name)
            continue
        file = folder / entry.name
        link = entry.is_symlink()
        resolved = str(file.resolve()) if link else os.path.join(real, entry.name)
        yield file, resolved, entry.is_file()
    for name in subdirs:
        yield from _walk(folder / name, os.path.join(real, name), errors)


def scan(paths: Iterable[str | Path] | str | Path) -> ScanResult:
    """Discover, parse headers and group CT series under ``paths`` (files or folders)."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    headers: list[FileHeader] = []
    skipped: list[SkippedFile] = []
    n_files = 0
    with quiet(), _gc_paused():  # once for the whole scan, not per file
        for item in progress(iter_files(paths), desc="scanning DICOM headers", unit="file"):
            if isinstance(item, SkippedFile):
                skipped.append(item)
                continue
            n_files += 1
            parsed = read_header(item)
            if isinstance(parsed, SkippedFile):
                skipped.append(parsed)
            else:
                headers.append(parsed)
    for skip in skipped:
        log.debug("skip %s: %s", skip.path, skip.reason)
    series, dup_skips = group_series(headers)
    lost = account_lost(series, skipped)
    return ScanResult(series, skipped + dup_skips, n_files, lost)


def account_lost(series: list[SeriesRecord], skipped: list[SkippedFile]) -> list[LostSeries]:
    """Attach each possibly-lost skipped file to its series; the rest become lost series.

    A file whose header gave its UIDs belongs to the series with those UIDs (every part of a
    split series). A file without readable UIDs (permission denied, empty, cut header) may
    belong to any series with files in the same folder, so it counts against each of them.
    """
    by_uid: dict[tuple[str, str], list[SeriesRecord]] = {}
    by_folder: dict[Path, list[SeriesRecord]] = {}
    for rec in series:
        by_uid.setdefault((rec.study_uid, rec.series_uid), []).append(rec)
        for folder in dict.fromkeys(fh.path.parent for fh in rec.files):
            by_folder.setdefault(folder, []).append(rec)
    lost: dict[tuple[str, str, Path], LostSeries] = {}
    for skip in skipped:
        if not skip.lost:
            continue
        if skip.series_uid:
            owners = by_uid.get((skip.study_uid, skip.series_uid), [])
            key = (skip.study_uid, skip.series_uid, Path())
        else:
            owners = by_folder.get(skip.path.parent, [])
            key = ("", "", skip.path.parent)
        for rec in owners:
            rec.lost.append(skip)
        if not owners:
            if key not in lost:
                lost[key] = LostSeries(key[0], key[1], skip.path.parent, [])
            lost[key].files.append(skip)
    for rec in series:
        if rec.lost:
            rec.warnings.append(
                f"incomplete: {len(rec.lost)} file(s) of this series skipped at scan ("
                + "; ".join(f"{s.path.name}: {s.reason}" for s in rec.lost[:3])
                + (f"; +{len(rec.lost) - 3} more" if len(rec.lost) > 3 else "")
                + ")"
            )
    return sorted(lost.values(), key=lambda ls: (str(ls.folder), ls.series_uid))


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while headers pile up.

    Each header allocates dozens of container objects; with thousands of headers alive, the
    collector's full passes re-walk all of them again and again (measured: up to 2x slower
    scans). The scan creates no reference cycles, so nothing is lost by collecting later.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def group_series(headers: list[FileHeader]) -> tuple[list[SeriesRecord], list[SkippedFile]]:
    """Group by (study, series), drop duplicate SOP instances, split inconsistent series."""
    groups: dict[tuple[str, str], list[FileHeader]] = {}
    for fh in headers:
        key = (fh.study_uid, fh.series_uid)
        groups.setdefault(key, []).append(fh)
    records: list[SeriesRecord] = []
    skipped: list[SkippedFile] = []
    for (study, series), files in groups.items():
        unique: dict[str, FileHeader] = {}
        conflicts: list[str] = []
        for fh in files:
            uid = fh.frames[0].sop_instance_uid
            if uid not in unique:
                unique[uid] = fh
                continue
            differs = _duplicate_conflict(unique[uid], fh)
            if differs:
                conflicts.append(
                    f"conflicting duplicate SOPInstanceUID {uid}: {unique[uid].path.name} and "
                    f"{fh.path.name} differ ({differs})"
                )
                skipped.append(
                    SkippedFile(fh.path, f"conflicting duplicate of {unique[uid].path} "
                                f"(same SOPInstanceUID, {differs})")
                )  # fmt: skip
            else:
                skipped.append(
                    SkippedFile(fh.path, f"duplicate of {unique[uid].path} (same SOPInstanceUID)")
                )
        parts: dict[tuple[object, ...], list[FileHeader]] = {}
        for fh in unique.values():
            parts.setdefault(_split_key(fh), []).append(fh)
        errors = _first_conflicts(conflicts)
        if len(parts) == 1:
            records.append(SeriesRecord(study, series, list(unique.values()), errors=errors))
            continue
        keys = sorted(parts, key=lambda k: str(parts[k][0].path))
        note = (
            f"series {series} split into {len(parts)} parts: orientation, image size or pixel "
            "spacing differ between its files"
        )
        for i, k in enumerate(keys, start=1):
            records.append(
                SeriesRecord(study, series, parts[k], part=i, warnings=[note], errors=list(errors))
            )
    for rec in records:
        mixed = _mixed_rescale(rec)
        if mixed:
            rec.errors.append(mixed)
    for rec in records:
        for fh in rec.files:
            rec.warnings.extend(f"{fh.path.name}: {w}" for w in fh.warnings)
    records.sort(key=_sort_key)
    return records, skipped


def _first_conflicts(conflicts: list[str], n: int = 3) -> list[str]:
    if len(conflicts) <= n:
        return conflicts
    return [*conflicts[:n], f"... {len(conflicts) - n} more conflicting duplicate(s)"]


def _duplicate_conflict(a: FileHeader, b: FileHeader) -> str:
    """What differs between two files with one SOPInstanceUID ("" = the same image)."""
    fa, fb = a.frames, b.frames
    if len(fa) != len(fb):
        return f"{len(fa)} vs {len(fb)} frames"
    for x, y in zip(fa, fb, strict=True):
        if x.position_mm != y.position_mm:
            return f"ImagePositionPatient {list(x.position_mm)} vs {list(y.position_mm)}"
        if x.rescale != y.rescale:
            return "rescale differs"
    if (a.rows, a.columns) != (b.rows, b.columns):
        return f"size {a.rows}x{a.columns} vs {b.rows}x{b.columns}"
    native = a.pixel_offset is not None and b.pixel_offset is not None
    if native and (a.pixel_length != b.pixel_length or not _same_bytes(a, b)):
        return "pixel data differ"
    return ""


def _same_bytes(a: FileHeader, b: FileHeader) -> bool:
    """Native pixel data of two files byte-equal (read in blocks; only for duplicates)."""
    try:
        with open(a.path, "rb") as fa, open(b.path, "rb") as fb:
            fa.seek(int(a.pixel_offset or 0))
            fb.seek(int(b.pixel_offset or 0))
            left = int(a.pixel_length or 0)
            while left > 0:
                n = min(left, 1 << 20)
                if fa.read(n) != fb.read(n):
                    return False
                left -= n
    except OSError:
        return False
    return True


def _mixed_rescale(rec: SeriesRecord) -> str:
    """Refusal reason when some planes have a rescale (or LUT) and others none."""
    frames = rec.frames
    bare = [f for f in frames if f.rescale.source == "none"]
    if not bare or len(bare) == len(frames):
        return ""
    names = ", ".join(dict.fromkeys(f.path.name for f in bare[:3]))
    more = f" +{len(bare) - 3} more" if len(bare) > 3 else ""
    return (
        f"rescale inconsistent across the series: {len(bare)} of {len(frames)} slices have no "
        f"RescaleSlope/RescaleIntercept ({names}{more}) while the others have them; their HU "
        "would be wrong by the intercept"
    )


def _split_key(fh: FileHeader) -> tuple[object, ...]:
    f = fh.frames[0]
    orientation = tuple(round(v, 3) for v in f.orientation)
    spacing = tuple(round(v, 4) for v in f.pixel_spacing_mm)
    return orientation, fh.rows, fh.columns, spacing


def _sort_key(rec: SeriesRecord) -> tuple[object, ...]:
    number = rec.series_number
    return (
        rec.patient_id,
        rec.study_uid,
        number if number is not None else 1 << 31,
        rec.series_uid,
        rec.part or 0,
    )
