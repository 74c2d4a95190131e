"""One ``ldct denoise`` process: run its shard, write its manifest part, merge, summarise.

Exit codes: 0 when every selected series is ok or was already done, 1
(:attr:`ExitCode.PARTIAL_FAILURE`) when any series failed, 3 (:attr:`ExitCode.INPUT`) when
series were found but none could be read.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline import __version__
from pipeline.config import config_hash, config_to_dict
from pipeline.errors import ExitCode
from pipeline.infer.config import DenoiseConfig
from pipeline.infer.engine import Denoiser
from pipeline.infer.manifest import MANIFEST_CSV, merge_parts, write_part
from pipeline.infer.plan import Plan, build_plan
from pipeline.infer.runner import SeriesRunner
from pipeline.records import ManifestRow, Status
from pipeline.utils.text import printable

if TYPE_CHECKING:
    from pipeline.io.discover import ScanResult

log = logging.getLogger(__name__)


def plan_inputs(
    inputs: list[Path],
    out_root: Path,
    cfg: DenoiseConfig,
    denoiser: Denoiser,
    shard: tuple[int, int] = (0, 1),
) -> tuple[Plan, ScanResult]:
    """Scan ``inputs`` (headers only) and plan every series found: the shared first half of
    ``ldct denoise`` and of the PACS service's worker."""
    from pipeline.io.discover import scan

    result = scan(inputs)
    plan = build_plan(
        result.series,
        result.skipped,
        out_root,
        cfg,
        denoiser.sha256,
        shard,
        lost_series=result.lost_series,
    )
    return plan, result


def denoise_planned(plan: Plan, cfg: DenoiseConfig, denoiser: Denoiser) -> SessionSummary:
    """Save the resolved config beside the outputs and run the plan: the shared second half."""
    from pipeline.config import save_resolved

    plan.out_root.mkdir(parents=True, exist_ok=True)
    name = f"denoise-config.shard-{plan.shard_index}-of-{plan.shard_count}.yaml"
    save_resolved(cfg, plan.out_root / name)
    return run_session(plan, cfg, denoiser)


@dataclass
class SessionSummary:
    """What the CLI prints and returns."""

    rows: list[ManifestRow]
    merged: list[ManifestRow]
    exit_code: int
    text: str
    wall_s: float


def exit_code_for(rows: list[ManifestRow]) -> int:
    """0 all ok/skipped; 3 if every attempted series failed to scan or read; 1 if any failed."""
    failed = [r for r in rows if r.status == Status.FAILED.value]
    if not failed:
        return ExitCode.OK
    attempted = [r for r in rows if r.status != Status.SKIPPED.value]
    unreadable = ("read:", "scan:")
    if all(r.reason.startswith(unreadable) for r in failed) and len(failed) == len(attempted):
        return ExitCode.INPUT
    return ExitCode.PARTIAL_FAILURE


def run_info(plan: Plan, cfg: DenoiseConfig, denoiser: Denoiser) -> dict[str, Any]:
    """Run-level provenance stored in the manifest part."""
    return {
        "package_version": __version__,
        "model_name": denoiser.name,
        "model_sha256": denoiser.sha256,
        "vgg_weights": denoiser.vgg_weights if denoiser.learned else "none (non-learned)",
        "precision": denoiser.precision,
        "device": str(denoiser.device),
        "config": config_to_dict(cfg),
        "config_hash": config_hash(cfg),
        "shard": f"{plan.shard_index}/{plan.shard_count}",
        "skipped_files": [[printable(s.path), printable(s.reason)] for s in plan.skipped_files],
        "finished_at": time.time(),
    }


def run_session(plan: Plan, cfg: DenoiseConfig, denoiser: Denoiser) -> SessionSummary:
    """Denoise this process's shard, then write and merge the manifest."""
    t0 = time.perf_counter()
    rows = SeriesRunner(plan, denoiser, cfg).run()
    wall = time.perf_counter() - t0
    write_part(
        plan.out_root, rows, plan.shard_index, plan.shard_count, run_info(plan, cfg, denoiser)
    )
    merged = merge_parts(plan.out_root)
    counts = Counter(r.status for r in rows)
    slices = sum(r.n_slices for r in rows if r.status == Status.OK.value)
    clipped = sum(r.n_clipped for r in rows)
    lines = [
        f"{counts[Status.OK.value]} ok, {counts[Status.SKIPPED.value]} skipped, "
        f"{counts[Status.FAILED.value]} failed ({slices} slices denoised in {wall:.1f} s"
        + (f", {slices / wall:.1f} slices/s" if slices and wall > 0 else "")
        + f"; model {denoiser.name} {denoiser.sha256[:12]}, {denoiser.precision})",
    ]
    if clipped:
        lines.append(f"{clipped} voxels clipped to the stored range (see n_clipped)")
    for r in rows:
        if r.status == Status.FAILED.value:
            lines.append(f"FAILED {r.input_path}: {r.reason}")
    lines.append(f"manifest: {plan.out_root / MANIFEST_CSV} ({len(merged)} series in all parts)")
    return SessionSummary(rows, merged, exit_code_for(rows), "\n".join(lines), wall)
