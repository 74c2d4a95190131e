"""Calibrate the grid/seam detector: detection rate vs injected amplitude, false positives.

Clean slices: the simulation helper's phantom (``pipeline.simulate.phantom.make_phantom``) plus
CT-like correlated noise (white noise band-passed to an FBP-like mid-frequency NPS, SD
``--noise`` HU); "denoised" = Gaussian smoothing (sigma 1.2 px) of the low-dose slice, so the
residual ``denoised - low`` carries noise plus blurred anatomy edges like a real denoiser's.
Injected into the denoised slice: checkerboards of period 2, 4, 8, 16 px (+-a HU) and a tile
seam (offset a HU right of a vertical border at 3/8 of the width). Reported: false-positive rate
on clean slices (per slice and per 8-slice "patient"), detection rate per pattern and
amplitude at the current thresholds (:data:`pipeline.evaluate.artifacts.DEFAULT_THRESHOLDS`),
and the clean score quantiles the thresholds were chosen from. Output: a markdown table
(pasted into docs/evaluation.md) and, with ``--plot``, docs/images/artifact_calibration.png.

    .venv/bin/python benchmarks/calibrate_artifacts.py [--quick] [--size 256] [--plot]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

from pipeline.evaluate.artifacts import (
    DEFAULT_THRESHOLDS,
    flag_patient,
    score_slice,
    seam_lines_for,
)
from pipeline.evaluate.body_mask import body_mask
from pipeline.evaluate.qa import inner_mask

AMPLITUDES_HU = (0.5, 1.0, 2.0, 3.0, 5.0, 8.0, 12.0, 20.0, 30.0, 50.0)
PATIENT_SLICES = 8


def ct_noise(shape: tuple[int, int], sd: float, rng: np.random.Generator) -> np.ndarray:
    """Band-passed (FBP-like: little power at DC, peak at mid frequencies) noise of SD ``sd``."""
    w = rng.standard_normal(shape)
    n = ndi.gaussian_filter(w - ndi.gaussian_filter(w, 4.0), 0.7)
    return sd * n / n.std()


def checker(period: int, amp: float, shape: tuple[int, int]) -> np.ndarray:
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    half = period // 2
    return amp * np.where(((yy // half) + (xx // half)) % 2 == 0, 1.0, -1.0)


def seam(amp: float, shape: tuple[int, int]) -> np.ndarray:
    """Offset ``amp`` right of column 3/8 W (off the phantom's midline anatomy)."""
    out = np.zeros(shape)
    out[:, 3 * shape[1] // 8 :] = amp
    return out


def make_slices(n: int, size: int, noise_sd: float, seed: int) -> list[tuple[np.ndarray, ...]]:
    """(low, denoised-like, inner body mask) per slice."""
    from pipeline.simulate.phantom import make_phantom

    rng = np.random.default_rng(seed)
    hu = make_phantom(n, size, seed).hu.astype(np.float64)
    out = []
    for z in range(n):
        low = hu[z] + ct_noise(hu[z].shape, noise_sd, rng)
        den = ndi.gaussian_filter(low, 1.2)
        out.append((low, den, inner_mask(body_mask(low))))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="16 slices, fewer amplitudes")
    ap.add_argument("--slices", type=int, default=None)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--noise", type=float, default=25.0, help="low-dose noise SD (HU)")
    ap.add_argument("--plot", action="store_true")
    a = ap.parse_args()
    n = a.slices or (16 if a.quick else 64)
    amps = AMPLITUDES_HU[::2] if a.quick else AMPLITUDES_HU
    th = DEFAULT_THRESHOLDS
    t0 = time.perf_counter()
    data = make_slices(n, a.size, a.noise, seed=7)
    shape = data[0][0].shape

    # the injected seam sits on a tile border of a grid with stride 3/8 W (as ldct denoise
    # records it); the seam test looks only at such borders
    stride = 3 * shape[1] // 8
    lines = seam_lines_for(shape, stride)
    kw = {"tile_stride_px": stride}
    clean = [score_slice(d - lo, m, input_hu=lo, **kw) for lo, d, m in data]
    spec = np.array([s.score_db for s in clean])
    seamz = np.array([s.seam.z for s in clean])
    groups = [clean[i : i + PATIENT_SLICES] for i in range(0, n, PATIENT_SLICES)]
    fp_slice = np.mean([s.flagged for s in clean])
    pats = [flag_patient(g, th, seam_lines=lines) for g in groups]
    fp_patient = np.mean([p.flagged for p in pats])
    negatives = {
        "Gaussian sigma 2 px": lambda lo: ndi.gaussian_filter(lo, 2.0),
        "median 5x5": lambda lo: ndi.median_filter(lo, 5),
        "Gaussian sigma 0.8 px": lambda lo: ndi.gaussian_filter(lo, 0.8),
    }
    neg_rows = []
    for name, fn in negatives.items():
        for grid in (None, stride):
            res = [
                score_slice(fn(lo) - lo, m, input_hu=lo, tile_stride_px=grid) for lo, _, m in data
            ]
            gl = seam_lines_for(shape, grid)
            pp = [flag_patient(res[i : i + PATIENT_SLICES], th, seam_lines=gl) for i in
                  range(0, n, PATIENT_SLICES)]  # fmt: skip
            neg_rows.append(
                (name, "known grid" if grid else "no grid", np.mean([s.flagged for s in res]),
                 np.mean([q.flagged for q in pp]))
            )  # fmt: skip
    pooled = np.array([p.max_seam_z for p in pats])
    print(f"{n} slices {shape[0]}x{shape[1]}, noise SD {a.noise:g} HU, residual = smooth - low")
    print(f"thresholds: score {th.score_db} dB, seam z {th.seam_z} (slice), "
          f"{th.seam_z_pooled} (pooled), patient fraction {th.patient_fraction}")  # fmt: skip
    q98 = np.quantile(spec, 0.98)
    print(f"clean spectral score dB: median {np.median(spec):.1f}, 98% {q98:.1f},"
          f" max {spec.max():.1f}; seam z: median {np.median(seamz):.1f}, "
          f"98% {np.quantile(seamz, 0.98):.1f}, max {seamz.max():.1f}; pooled seam z per "
          f"patient: max {pooled.max():.1f}")  # fmt: skip
    print(f"false positives: {100 * fp_slice:.1f} % of slices, {100 * fp_patient:.1f} % of "
          f"{len(groups)} patients ({PATIENT_SLICES} slices each)")  # fmt: skip
    print("| negative (denoised = f(low)) | seam test | flagged slices | flagged patients |")
    print("|---|---|---|---|")
    for name, grid_txt, fs, fp in neg_rows:
        print(f"| {name} | {grid_txt} | {100 * fs:.0f} % | {100 * fp:.0f} % |")
    print()

    patterns: dict[str, object] = {f"checker {p} px": p for p in (2, 4, 8, 16)}
    patterns["seam (slice)"] = "seam"
    patterns["seam (patient, pooled)"] = "seam-pooled"
    rates: dict[str, list[float]] = {}
    for name, kind in patterns.items():
        row = []
        for amp in amps:
            if kind in ("seam", "seam-pooled"):
                inj = seam(amp, shape)
                res = [score_slice(d + inj - lo, m, input_hu=lo, **kw) for lo, d, m in data]
                if kind == "seam":
                    row.append(float(np.mean([s.seam.z >= th.seam_z for s in res])))
                else:
                    pats = [
                        flag_patient(res[i : i + PATIENT_SLICES], th, seam_lines=lines)
                        for i in range(0, n, 8)
                    ]
                    row.append(float(np.mean([p.flagged for p in pats])))
            else:
                inj = checker(int(kind), amp, shape)  # type: ignore[call-overload]
                res = [score_slice(d + inj - lo, m, input_hu=lo) for lo, d, m in data]
                row.append(float(np.mean([s.score_db >= th.score_db for s in res])))
        rates[name] = row
    head = "| pattern | " + " | ".join(f"{x:g} HU" for x in amps) + " | min. amplitude >= 95 % |"
    print(head)
    print("|" + "---|" * (len(amps) + 2))
    for name, row in rates.items():
        ok = [amp for amp, r in zip(amps, row, strict=True) if r >= 0.95]
        smallest = f"{ok[0]:g} HU" if ok else f"> {amps[-1]:g} HU"
        cells = " | ".join(f"{100 * r:.0f} %" for r in row)
        print(f"| {name} | {cells} | {smallest} |")
    print(f"\n({time.perf_counter() - t0:.0f} s)")
    if a.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 4))
        for name, row in rates.items():
            ax.semilogx(amps, [100 * r for r in row], marker="o", label=name)
        ax.axhline(95, color="grey", ls="--", lw=0.8)
        ax.set_xlabel("injected amplitude (HU)")
        ax.set_ylabel("detection rate (%)")
        ax.set_title(f"grid/seam detector, noise SD {a.noise:g} HU, FP {100 * fp_slice:.1f} %")
        ax.legend(fontsize=7)
        out = Path(__file__).resolve().parent.parent / "docs" / "images"
        out.mkdir(parents=True, exist_ok=True)
        fig.tight_layout()
        fig.savefig(out / "artifact_calibration.png", dpi=100)
        print(f"wrote {out / 'artifact_calibration.png'}")


if __name__ == "__main__":
    main()
