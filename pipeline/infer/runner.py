"""Run a denoising plan: read -> infer -> write per series, I/O overlapped with inference.

Three stages run at once: a reader thread decodes the next series while the main thread runs the
model on the current one, and a writer thread encodes and verifies each finished batch of slices
of the current series (:mod:`pipeline.infer.stream`) while the next batch runs, then publishes
the series. Reads are bounded (``prefetch``, ``volume_budget_mb``), so at most ``prefetch + 2``
volumes are in memory whatever the number of studies; the model writes its output into the input
array and the writer encodes from it (one volume per series in flight, no copies). Every failure
is caught per series and recorded in its manifest row.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline import __version__
from pipeline.errors import ConfigError, DicomError, LdctError
from pipeline.infer.config import DenoiseConfig
from pipeline.infer.engine import Denoiser
from pipeline.infer.plan import OWN_DERIVATION_PREFIX, Plan, PlanItem, shard_of
from pipeline.infer.publish import clean_stale_staging, verify_completed
from pipeline.infer.stream import NIFTI_NAME, SeriesSink, SinkOptions
from pipeline.io.deid import Deidentifier
from pipeline.io.derived_header import DerivedInfo, series_description
from pipeline.io.suspect import is_lossy
from pipeline.io.volume import CTVolume
from pipeline.models.envelope import (
    SeriesFacts,
    dicom_plausibility,
    guardrail_notes,
    review_reasons,
)
from pipeline.records import ManifestRow, Status, TileFields
from pipeline.utils.progress import progress_bar
from pipeline.utils.text import printable

log = logging.getLogger(__name__)


@dataclass
class _Timed:
    volume: CTVolume
    read_s: float


def describe_error(exc: BaseException) -> str:
    """One line for the manifest: our own errors as they are, others with their type."""
    if isinstance(exc, LdctError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def _lost_text(s: dict[str, str]) -> str:
    what = "skipped at scan" if s.get("stage") == "scan" else "undecodable"
    return f"{Path(s['path']).name} {what} ({s['reason']})"


def incomplete_reasons(vol: CTVolume) -> list[str]:
    """Why a read volume lacks slices: files of the series the scan could not use, files
    dropped by the decoder, or z gaps between the slices that remain."""
    out = [_lost_text(s) for s in vol.meta.get("skipped_files") or []]
    out += [w for w in vol.warnings if w.startswith("missing slices")]
    return out


def scan_incomplete(record: object) -> list[str]:
    """Lost files a scanned series is known to miss before reading it."""
    lost = getattr(record, "lost", None) or []
    return [_lost_text({"path": str(s.path), "reason": s.reason, "stage": "scan"}) for s in lost]


def deidentifier(cfg: DenoiseConfig) -> Deidentifier | None:
    """The de-identifier of ``output.deidentify`` (key from LDCT_PSEUDONYM_KEY), or None."""
    if not cfg.output.deidentify:
        return None
    import os

    from pipeline.report.pseudonym import ENV_KEY, Pseudonymizer

    key = os.environ.get(ENV_KEY, "")
    if not key:
        raise ConfigError(
            f"output.deidentify needs the pseudonymisation key in {ENV_KEY} (the key of "
            "`ldct report --pseudonymize --key`): the same key gives the same pseudonyms and "
            "UIDs on every run"
        )
    return Deidentifier(key, Pseudonymizer(True, key))


def _row(item: PlanItem, status: Status, reason: str, shard: str, **kw: object) -> ManifestRow:
    f = item.facts
    return ManifestRow(
        series_key=f.key,
        input_path=str(f.folder),
        status=status.value,
        reason=reason,
        study_uid=f.study_uid,
        source_series_uid=f.series_uid,
        series_description=f.description,
        n_slices=f.n_slices,
        rows=f.rows,
        columns=f.columns,
        source_flags="; ".join(f.flags),
        source_lossy=is_lossy(f.flags),
        shard=shard,
        **kw,  # type: ignore[arg-type]
    )


def _incomplete(problems: list[str]) -> DicomError:
    shown = "; ".join(problems[:10]) + (
        f"; +{len(problems) - 10} more" if len(problems) > 10 else ""
    )
    return DicomError(
        f"series incomplete ({len(problems)} problem(s)), not denoised (set allow_incomplete: "
        f"true to denoise the slices that remain): {shown}"
    )


#: denoised HU outside this range are not CT numbers: the model is broken, the series fails
OUTPUT_HU_RANGE = (-2048.0, 32000.0)


def check_output(vol: CTVolume, start: int, stop: int) -> None:
    """Refuse a denoised batch with non-finite or implausible HU outside padding."""
    out = vol.hu[start:stop]
    mask = vol.padding_mask[start:stop] if vol.padding_mask is not None else None
    tissue = out[~mask] if mask is not None and mask.any() else out
    if tissue.size == 0:
        return
    bad = int(tissue.size - np.isfinite(tissue).sum())
    if bad:
        raise LdctError(
            f"model output not finite: {bad} NaN/inf voxel(s) in slices {start}..{stop - 1}; "
            "series not written (check the checkpoint)"
        )
    lo, hi = float(tissue.min()), float(tissue.max())
    if lo < OUTPUT_HU_RANGE[0] or hi > OUTPUT_HU_RANGE[1]:
        raise LdctError(
            f"model output implausible: HU {lo:.6g}..{hi:.6g} in slices {start}..{stop - 1} "
            f"(plausible CT {OUTPUT_HU_RANGE[0]:.0f}..{OUTPUT_HU_RANGE[1]:.0f}); series not written"
        )


def lost_row(lost: object, shard: str) -> ManifestRow:
    """The failed row of a series of which every file was skipped at scan."""
    from pipeline.infer.plan import _h

    study = str(getattr(lost, "study_uid", ""))
    series = str(getattr(lost, "series_uid", ""))
    folder = Path(getattr(lost, "folder", ""))
    files = getattr(lost, "files", [])
    return ManifestRow(
        series_key=_h(printable(f"lost|{study}|{series}|{folder}"), 16),
        input_path=str(folder),
        status=Status.FAILED.value,
        reason=f"scan: {getattr(lost, 'reason', '')}",
        study_uid=study,
        source_series_uid=series,
        n_slices=len(files),
        shard=shard,
    )


class SeriesRunner:
    """Runs the items of one shard of a :class:`Plan` with one :class:`Denoiser`."""

    def __init__(
        self,
        plan: Plan,
        denoiser: Denoiser,
        cfg: DenoiseConfig,
        read: Callable[[object], CTVolume] | None = None,
    ) -> None:
        self.plan = plan
        self.denoiser = denoiser
        self.cfg = cfg
        self.out_root = plan.out_root
        self.shard = f"{plan.shard_index}/{plan.shard_count}"
        if read is None:
            from pipeline.io.read import read_series

            workers, plausible = cfg.read_workers, cfg.check_plausible_hu

            def read(record: object) -> CTVolume:
                return read_series(
                    record,  # type: ignore[arg-type]
                    workers=workers,
                    check_plausible=plausible,
                )

        self._read = read
        self.deidentifier = deidentifier(cfg)
        self._review: dict[str, tuple[str, str]] = {}

    # -- stages ---------------------------------------------------------------------------
    def _read_stage(self, item: PlanItem) -> _Timed:
        t0 = time.perf_counter()
        known = scan_incomplete(item.record)
        if known and not self.cfg.allow_incomplete:  # refuse before decoding anything
            raise _incomplete(known)
        vol = self._read(item.record)
        problems = incomplete_reasons(vol)
        if problems and not self.cfg.allow_incomplete:
            raise _incomplete(problems)
        return _Timed(vol, time.perf_counter() - t0)

    def _output_kw(self, item: PlanItem) -> dict[str, str]:
        """Manifest paths of a completed series (empty for a format that was not written)."""
        return {
            "output_path": str(item.out_dir) if self.cfg.format.dicom else "",
            "nifti_path": str(item.record_dir / NIFTI_NAME) if self.cfg.format.nifti else "",
        }

    def _model_kw(self) -> dict[str, object]:
        d = self.denoiser
        return {"model_name": d.name, "model_sha256": d.sha256, "precision": d.precision}

    def description(self, vol: CTVolume) -> str:
        """Derived SeriesDescription: source text (or ``CT series <n>``) + suffix + model."""
        d = self.denoiser
        tag = f" [{self.cfg.description_suffix} {d.name} {d.sha256[:8]}]"
        source = None if self.deidentifier is not None else vol.meta.get("SeriesDescription")
        return series_description(source, vol.meta, tag)  # de-identified: no source text

    def derivation(self) -> str:
        d = self.denoiser
        return (
            f"{OWN_DERIVATION_PREFIX} {__version__} with {d.describe_model()}; "
            f"precision {d.precision}; HU rescaled with the source slope/intercept"
        )

    def review(self, vol: CTVolume) -> tuple[str, str]:
        """(reasons, notes) "; "-joined: the series against the model's envelope and DICOM facts."""
        d = self.denoiser
        facts = SeriesFacts.from_meta(vol.meta, vol.spacing_mm)
        reasons = review_reasons(d.envelope, facts) if d.learned else dicom_plausibility(facts)
        notes = guardrail_notes(d.envelope, facts, learned=d.learned)
        return "; ".join(reasons), "; ".join(notes)

    def sink(self, item: PlanItem, vol: CTVolume) -> SeriesSink:
        """The streaming writer of one series (opens its staging folder on first use)."""
        self._review[item.facts.key] = self.review(vol)
        d = self.denoiser
        opts = SinkOptions(
            dicom=self.cfg.format.dicom,
            nifti=self.cfg.format.nifti,
            series_description=self.description(vol),
            derivation_description=self.derivation(),
            uid_key=f"{d.name}-{d.sha256}",
            derived=DerivedInfo(
                model_name="ldct denoise",
                software_versions=(__version__, f"model {d.name} {d.sha256[:16]}"),
            ),
            transfer_syntax=self.cfg.output.transfer_syntax,
            deidentify=self.deidentifier,
        )
        return SeriesSink(vol, self.out_root, item.facts.key, opts)

    def _write_stage(self, item: PlanItem, sink: SeriesSink, tiles: TileFields) -> ManifestRow:
        """Writer thread, after every batch of ``sink`` was written: publish and report."""
        comp = sink.publish(item.fingerprint, item.out_dir, item.record_dir)
        reasons, notes = self._review.pop(item.facts.key, ("", ""))
        return _row(
            item,
            Status.OK,
            "",
            self.shard,
            derived_series_uid=comp.derived_series_uid,
            n_clipped=comp.n_clipped,
            **self._output_kw(item),
            write_s=round(sink.write_s, 3),
            tiling=tiles.text(),
            **tiles.row_fields(),
            review_reasons=reasons,
            review_notes=notes,
            **self._model_kw(),
        )

    # -- driver -----------------------------------------------------------------------------
    def resume_row(self, item: PlanItem) -> ManifestRow | None:
        """A 'skipped' row if the series was already completed and verifies, else None."""
        comp = verify_completed(item.record_dir, item.out_dir, item.fingerprint)
        if comp is None:
            return None
        return _row(
            item,
            Status.SKIPPED,
            "already completed and verified (resume)",
            self.shard,
            derived_series_uid=comp.derived_series_uid,
            n_clipped=comp.n_clipped,
            **self._output_kw(item),
            **self._model_kw(),
        )

    def run(self) -> list[ManifestRow]:
        """Process this shard's items; returns one row per item (never raises per series)."""
        clean_stale_staging(self.out_root)
        rows: list[ManifestRow] = []
        todo: list[PlanItem] = []
        for item in self.plan.mine():
            if not item.selected:
                rows.append(_row(item, Status.SKIPPED, item.skip_reason, self.shard))
                continue
            done = self.resume_row(item)
            if done is not None:
                rows.append(done)
            else:
                todo.append(item)
        n_done = sum(r.status == Status.SKIPPED.value and bool(r.derived_series_uid) for r in rows)
        if n_done:
            log.info("%d series already completed and verified: skipped (resume)", n_done)
        for lost in getattr(self.plan, "lost_series", []):
            row = lost_row(lost, self.shard)
            if shard_of(row.series_key, self.plan.shard_count) == self.plan.shard_index:
                rows.append(row)
        if todo:
            rows += _Pipeline(self, todo).run()
        return rows

    def failed(self, item: PlanItem, stage: str, exc: BaseException, **kw: object) -> ManifestRow:
        log.debug("%s failed for %s", stage, item.facts.folder, exc_info=exc)
        reason = f"{stage}: {describe_error(exc)}"
        return _row(item, Status.FAILED, reason, self.shard, **self._model_kw(), **kw)


def volume_bytes(item: PlanItem) -> int:
    """Memory one series holds while in flight: float32 HU + bool padding mask per voxel."""
    f = item.facts
    return f.n_slices * f.rows * f.columns * 5


class _Pipeline:
    """The three overlapped stages over a list of items, within a memory budget for volumes."""

    def __init__(self, runner: SeriesRunner, todo: list[PlanItem]) -> None:
        self.r = runner
        self.queue = deque(todo)
        self.budget = runner.cfg.volume_budget_mb * 2**20
        self.depth = runner.cfg.prefetch
        self.held: dict[str, int] = {}  # series key -> bytes, for every series in flight
        self.reads: deque[tuple[PlanItem, Future[_Timed]]] = deque()
        self.writes: deque[tuple[PlanItem, Future[ManifestRow], dict[str, float]]] = deque()
        self.rows: list[ManifestRow] = []
        self.n_todo = len(todo)
        self.inferred: dict[str, int] = {}  # series key -> slices already counted in progress
        self.missing: dict[str, str] = {}  # series key -> absent slices (allow_incomplete)
        self.bar = progress_bar(
            desc="denoise", total=sum(i.facts.n_slices for i in todo), unit="slice"
        )

    def _count_inferred(self, item: PlanItem, n: int) -> None:
        """Progress per inference batch (a long series or a slow denoiser is not silent)."""
        self.inferred[item.facts.key] = self.inferred.get(item.facts.key, 0) + n
        self.bar.update(n)

    def _finish(self, item: PlanItem, row: ManifestRow) -> None:
        self.held.pop(item.facts.key, None)
        self.rows.append(row)
        self.bar.update(max(0, item.facts.n_slices - self.inferred.pop(item.facts.key, 0)))
        f = item.facts
        why = f": {row.reason}" if row.reason else ""
        self.bar.note(
            f"series {len(self.rows)}/{self.n_todo} {row.status}: {f.folder.name} "
            f"({f.n_slices} x {f.rows}x{f.columns}){why}"
        )

    def _fill_reads(self, reader: ThreadPoolExecutor, target: int) -> None:
        """Queue reads up to ``target`` while the volumes in flight stay within the budget."""
        while self.queue and len(self.reads) < target:
            self._drain_writes(block_until=len(self.writes), only_done=True)
            need = volume_bytes(self.queue[0])
            if self.held and sum(self.held.values()) + need > self.budget:
                return  # the next read starts once memory is released
            item = self.queue.popleft()
            self.held[item.facts.key] = need
            self.reads.append((item, reader.submit(self.r._read_stage, item)))

    def _drain_writes(self, block_until: int, only_done: bool = False) -> None:
        """Collect finished writes; wait for the oldest ones while more than ``block_until``."""
        while self.writes:
            item, fut, times = self.writes[0]
            if only_done and not fut.done():
                return
            if not only_done and len(self.writes) <= block_until:
                return
            self.writes.popleft()
            try:
                row = fut.result()
                row.read_s, row.infer_s = times["read_s"], times["infer_s"]
                row.missing = self.missing.pop(item.facts.key, "")
            except Exception as exc:
                row = self.r.failed(item, "write", exc, **times)
            self._finish(item, row)

    def run(self) -> list[ManifestRow]:
        with (
            ThreadPoolExecutor(1, thread_name_prefix="ldct-read") as reader,
            ThreadPoolExecutor(1, thread_name_prefix="ldct-write") as writer,
        ):
            while self.queue or self.reads:
                self._fill_reads(reader, 1)
                while not self.reads:  # the next series does not fit beside pending writes
                    self._drain_writes(len(self.writes) - 1)  # wait for the oldest one
                    self._fill_reads(reader, 1)
                item, fut = self.reads.popleft()
                self._fill_reads(reader, self.depth)  # decode the next series meanwhile
                try:
                    timed = fut.result()
                except Exception as exc:
                    self._finish(item, self.r.failed(item, "read", exc))
                    continue
                vol, t0 = timed.volume, time.perf_counter()
                sink = self.r.sink(item, vol)

                def stream(
                    start: int,
                    stop: int,
                    sink: SeriesSink = sink,
                    vol: CTVolume = vol,
                    item: PlanItem = item,
                ) -> None:
                    check_output(vol, start, stop)  # nothing implausible reaches the writer
                    writer.submit(sink.write, start, stop)  # runs while the next batch infers
                    self._count_inferred(item, stop - start)

                try:
                    tiles = self.r.denoiser.tile_fields(
                        self.r.denoiser.plan(vol.shape[1], vol.shape[2])
                    )
                    self.r.denoiser.denoise_slices(vol.hu, out=vol.hu, on_batch=stream)
                except Exception as exc:
                    writer.submit(sink.discard).result()  # after the batches already queued
                    self._finish(item, self.r.failed(item, "infer", exc, read_s=timed.read_s))
                    continue
                times = {
                    "read_s": round(timed.read_s, 3),
                    "infer_s": round(time.perf_counter() - t0, 3),
                }
                self._drain_writes(max(0, self.depth - 1))
                # non-empty only with allow_incomplete: the manifest names what is absent
                self.missing[item.facts.key] = "; ".join(incomplete_reasons(vol))
                job = writer.submit(self.r._write_stage, item, sink, tiles)
                self.writes.append((item, job, times))
                del vol, timed, sink, stream
            self._drain_writes(0)
        self.bar.close()
        return self.rows
