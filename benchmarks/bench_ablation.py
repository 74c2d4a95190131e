"""Several model checkpoints on the held-out benchmark's set, side by side (no BM3D/NLM rerun).

Scores each checkpoint exactly as ``benchmarks/bench_heldout.py`` scores its model (same cached
held-out set, same functions: PSNR/SSIM gain over quarter dose on the ``redcnn`` profile, TG-233
noise SD and NPS mean frequency vs full dose, edge width), plus the grid-artifact detector's
score of ``denoised - low`` (:func:`pipeline.evaluate.artifacts.score_slice`, dB above the
spectral background; flagged or not). Used for the objective ablation of the model card; the
held-out numbers are reported, never used to choose (docs/model-card.md states the rule).

Usage: ``python benchmarks/bench_ablation.py LABEL=CKPT [LABEL=CKPT ...] [--quick] [--out J]``
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_heldout as B

from pipeline.evaluate.artifacts import score_slice
from pipeline.evaluate.body_mask import body_mask
from pipeline.evaluate.qa import inner_mask


def load(label_ckpt: str) -> B.Method:
    from pipeline.infer.config import DenoiseConfig
    from pipeline.infer.loader import load_denoiser, resolve_model_path

    label, _, ckpt = label_ckpt.partition("=")
    if not ckpt:
        raise SystemExit(f"expected LABEL=CHECKPOINT, found {label_ckpt!r}")
    cfg = DenoiseConfig(model=ckpt, precision="fp32", device="cpu")
    den = load_denoiser(cfg, resolve_model_path(cfg))
    return B.Method(label, den.denoise_slices)


def grid_scores(slices: list[Any], methods: list[B.Method]) -> dict[str, dict[str, float]]:
    """Mean artifact score (dB) and fraction of flagged slices of denoised - low, per method."""
    out: dict[str, dict[str, float]] = {}
    for m in methods:
        scores, flags = [], []
        for s in slices:
            body = body_mask(s.full_hu)
            res = score_slice(m(s.low_hu) - s.low_hu, inner_mask(body), input_hu=s.low_hu)
            scores.append(res.score_db)
            flags.append(bool(res.flagged))
        out[m.label] = {"score_db": float(np.mean(scores)), "flagged": float(np.mean(flags))}
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="+", help="LABEL=CHECKPOINT")
    ap.add_argument("--quick", action="store_true", help="2 phantoms, 1 real slice")
    ap.add_argument("--out", type=Path, default=Path("bench_ablation.json"))
    args = ap.parse_args()
    methods = [load(m) for m in args.models]
    n_ph = 2 if args.quick else 6
    names = ("explicit_VR-UN.dcm",) if args.quick else B.H.REAL_FILES
    t0 = time.perf_counter()
    ph, real, missing, _ = B.build_set(n_ph, names, B.default_cache())
    labels = [m.label for m in methods]
    ph_rows = [B.score_phantom(p, methods) for p in ph]
    real_rows = [B.score_real(s, methods) for s in real]
    if ph_rows:
        B.print_part("(a) held-out phantoms 256^2", ph_rows, labels, True)
    if real_rows:
        B.print_part("(b) real CT (pydicom / pydicom-data)", real_rows, labels, False)
    grid = {
        "phantom": grid_scores([p[0] for p in ph], methods),
        "real": grid_scores(real, methods),
    }
    print("\n== grid-artifact score of denoised - low (dB; flagged fraction)")
    for part, by in grid.items():
        print(
            f"  {part}: "
            + "  ".join(f"{k} {v['score_db']:.1f} ({v['flagged']:.2f})" for k, v in by.items())
        )
    result = {
        "benchmark": "bench_ablation",
        "models": args.models,
        "phantom": {"slices": ph_rows, "mean": B.mean_of(ph_rows) if ph_rows else {}},
        "real": {"slices": real_rows, "mean": B.mean_of(real_rows) if real_rows else {}},
        "missing_real": missing,
        "grid": grid,
        "seconds": time.perf_counter() - t0,
    }
    args.out.write_text(json.dumps(B.finite(result), indent=1), encoding="utf-8")
    print(f"\nwrote {args.out} ({result['seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
