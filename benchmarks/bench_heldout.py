"""Held-out benchmark: a model checkpoint vs BM3D vs NLM on CT no model has seen, in one run.

Run: ``.venv/bin/python benchmarks/bench_heldout.py [--checkpoint CKPT] [--quick] [--avx2]
[--phantoms N] [--real NAME ...] [--dose D] [--no-bm3d] [--cache DIR | --no-cache]
[--out results.json]``
(``--markdown results.json`` prints the docs tables of a finished run).

The held-out set (:mod:`pipeline.simulate.heldout`, never for training or model selection):
(a) ``--phantoms`` perturbed Shepp-Logan + lumpy-background phantoms at 256^2, 1.48 mm, cosine
FBP, 540 views, quarter dose simulated in the sinogram domain, two noise realisations each;
(b) the real pydicom / pydicom-data CT slices at 512^2 with quarter dose by noise insertion
(the ``ldct simulate`` path). Every method sees the same quarter-dose slices.

Printed per part and as the mean over the slices of the part:

* PSNR / SSIM gain over the quarter-dose input, profile ``redcnn`` ([-160, 240] HU clipped,
  data range 400 HU, 11x11 Gaussian SSIM), against full dose;
* noise texture vs full dose (TG-233, :mod:`pipeline.evaluate.nps`): (a) noise-only images
  from the two realisations, ``(D(low_1) - D(low_2)) / sqrt(2)`` for every method and
  ``(full_1 - full_2) / sqrt(2)`` for full dose: noise SD and NPS mean frequency, and their
  ratio to full dose; (b) one realisation only, so the paired residual ``D(low) - full`` (noise
  SD and NPS mean frequency of what remains; for the input it is exactly the inserted noise);
* edge width: 10-90 % rise of the edge spread function across the body outline (mm), and its
  ratio to full dose (> 1 = blurred);
* speed per slice, model fp32 vs NLM vs BM3D, one after the other on the same CPU (CPU class
  from :mod:`pipeline.models.capability`), per image size.

The model default is the bundled model. ``--quick``: 2 phantoms and 1 real slice. The built
held-out set is cached (default ``~/.cache/ldct-pipeline/heldout``, keyed by the simulator's
source), so a rerun for another checkpoint skips the simulation (~6 min of the ~12 min default
run at load ~11 on 2 cores).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import json
import math
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pipeline.evaluate.body_mask import body_mask  # noqa: E402
from pipeline.evaluate.nps import role_spectra  # noqa: E402
from pipeline.evaluate.profiles import compute_profile  # noqa: E402
from pipeline.evaluate.qa import inner_mask  # noqa: E402
from pipeline.evaluate.sharpness import edge_spread  # noqa: E402
from pipeline.simulate import heldout as H  # noqa: E402

PROFILE = "redcnn"
#: pipeline.simulate modules the held-out set depends on (the cache key hashes their source;
#: the training-set generators are not among them, so changing those keeps the cache)
SET_SOURCES = ("heldout", "lowdose", "noise", "projector", "geometry", "matrices", "from_volume")


def cpu_description() -> str:
    """CPU class line: pipeline.models.capability when present, else /proc/cpuinfo flags."""
    try:
        from pipeline.models.capability import capability

        return str(capability("cpu").describe())
    except ImportError:
        flags: set[str] = set()
        name = platform.processor()
        try:
            for line in Path("/proc/cpuinfo").read_text().splitlines():
                if line.startswith("flags") and not flags:
                    flags = set(line.split(":", 1)[1].split())
                if line.startswith("model name"):
                    name = line.split(":", 1)[1].strip()
        except OSError:
            pass
        cls = (
            "amx-bf16"
            if "amx_bf16" in flags
            else "avx512"
            if "avx512f" in flags
            else "avx2"
            if "avx2" in flags
            else "other"
        )
        return f"cpu: {name} (class {cls}, from /proc/cpuinfo flags)"


def default_cache() -> Path:
    """``$XDG_CACHE_HOME/ldct-pipeline/heldout`` (outside the repository)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "ldct-pipeline" / "heldout"


def version(pkg: str) -> str:
    try:
        return importlib.metadata.version(pkg)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


# -- the held-out set (optionally cached: building the real part costs ~30 s per 512^2 slice) --
def build_set(
    n_phantoms: int, real_names: tuple[str, ...], cache: Path | None, dose: float = 0.25
) -> tuple[list[list[H.HeldoutSlice]], list[H.HeldoutSlice], list[str], float]:
    """Phantom pairs (two noise realisations each), real pairs, missing real files, build s."""
    sim = Path(H.__file__).parent
    sources = b"".join((sim / f"{m}.py").read_bytes() for m in SET_SOURCES)
    key = hashlib.sha256(
        json.dumps(
            [n_phantoms, list(real_names), H.HELDOUT_FILTER, H.HELDOUT_VIEWS]
            + ([] if dose == 0.25 else [dose])  # quarter dose keeps the keys of earlier caches
        ).encode()
        + sources  # any change to the simulator or the held-out builders rebuilds the set
    ).hexdigest()[:16]
    path = cache / f"heldout-{key}.npz" if cache else None
    t0 = time.perf_counter()
    if path is not None and path.is_file():
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            ph = [
                [
                    H.HeldoutSlice(
                        m["name"],
                        "phantom",
                        z[f"p{i}_{r}_low"],
                        z[f"p{i}_{r}_full"],
                        m["pixel_mm"],
                        m["info"],
                    )
                    for r, m in enumerate(pair)
                ]
                for i, pair in enumerate(meta["phantoms"])
            ]
            real = [
                H.HeldoutSlice(
                    m["name"], "real", z[f"r{i}_low"], z[f"r{i}_full"], m["pixel_mm"], m["info"]
                )
                for i, m in enumerate(meta["real"])
            ]
            print(f"held-out set loaded from {path}")
            return ph, real, meta["missing"], time.perf_counter() - t0
    first = H.phantom_pairs(n_phantoms, dose=dose)
    second = H.phantom_pairs(n_phantoms, dose=dose, noise_seed=H.HELDOUT_SEED_BASE + 50_000)
    ph = [[a, b] for a, b in zip(first, second, strict=True)]
    real, missing = H.real_pairs(real_names, dose=dose)
    build_s = time.perf_counter() - t0
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays: dict[str, np.ndarray] = {}
        for i, pair in enumerate(ph):
            for r, s in enumerate(pair):
                arrays[f"p{i}_{r}_low"], arrays[f"p{i}_{r}_full"] = s.low_hu, s.full_hu
        for i, s in enumerate(real):
            arrays[f"r{i}_low"], arrays[f"r{i}_full"] = s.low_hu, s.full_hu

        def m(s: H.HeldoutSlice) -> dict[str, Any]:
            return {"name": s.name, "pixel_mm": s.pixel_mm, "info": s.info}

        meta = {
            "phantoms": [[m(s) for s in p] for p in ph],
            "real": [m(s) for s in real],
            "missing": missing,
        }
        tmp = path.with_name(path.stem + ".tmp.npz")
        np.savez(tmp, meta=json.dumps(meta, default=str), **arrays)
        tmp.replace(path)
    return ph, real, missing, build_s


# -- methods -----------------------------------------------------------------------------------
class Method:
    """A denoiser applied to one HU slice at a time, timing every call."""

    def __init__(self, label: str, fn: Any) -> None:
        self.label = label
        self.fn = fn
        self.times: dict[int, list[float]] = {}

    def __call__(self, hu: np.ndarray) -> np.ndarray:
        t0 = time.perf_counter()
        out = np.asarray(self.fn(hu[None].astype(np.float32))[0], dtype=np.float32)
        self.times.setdefault(hu.shape[-1], []).append(time.perf_counter() - t0)
        return out


def load_methods(checkpoint: str | None, with_bm3d: bool) -> tuple[list[Method], dict[str, Any]]:
    from pipeline.infer.classical import ClassicalDenoiser
    from pipeline.infer.config import DenoiseConfig
    from pipeline.infer.loader import load_denoiser, resolve_model_path

    cfg = DenoiseConfig(model=checkpoint, precision="fp32", device="cpu")
    src = resolve_model_path(cfg)
    den = load_denoiser(cfg, src)
    for n in (256, 512):  # warm-up per size (first-call allocations are not the model's speed)
        den.denoise_slices(np.zeros((1, n, n), np.float32))
    info: dict[str, Any] = {
        "model": {
            "name": den.name,
            "checkpoint": str(src.path),
            "bundled": src.bundled,
            "weights_sha256": den.sha256,
            "precision": den.precision,
        },
        "nlm": {"version": ClassicalDenoiser("nlm").version},
    }
    methods = [
        Method("model", den.denoise_slices),
        Method("nlm", ClassicalDenoiser("nlm").denoise_slices),
    ]
    if with_bm3d:
        try:
            bm = ClassicalDenoiser("bm3d")
        except Exception as exc:  # DependencyError: the optional extra is absent
            print(f"BM3D skipped: {exc}")
            info["bm3d"] = {"skipped": str(exc)}
        else:
            methods.append(Method("bm3d", bm.denoise_slices))
            info["bm3d"] = {"version": bm.version, "config_sha256": bm.sha256}
    info["nlm"]["config_sha256"] = ClassicalDenoiser("nlm").sha256
    return methods, info


# -- metrics -----------------------------------------------------------------------------------
def quality(pred: np.ndarray, full: np.ndarray) -> tuple[float, float]:
    r = compute_profile(
        torch.from_numpy(pred)[None, None].float(),
        torch.from_numpy(full)[None, None].float(),
        PROFILE,
    )
    return float(r["psnr"][0]), float(r["ssim"][0])


def edge_mm(img: np.ndarray, body: np.ndarray, pixel_mm: float) -> float:
    return float(edge_spread(img, body, pixel_mm=pixel_mm).rise_10_90_mm)


def texture(
    vols: dict[str, np.ndarray], body: np.ndarray, pixel_mm: float, method: str
) -> dict[str, dict[str, float]]:
    """Per role: TG-233 noise SD and NPS mean frequency of the ``method`` noise-only images."""
    inner = inner_mask(body)
    spectra = role_spectra(vols, inner, (pixel_mm, pixel_mm))
    out = {}
    for role, found in spectra.items():
        sp = found.get(method)
        out[role] = {
            "noise_sd_hu": sp.noise_sd_hu if sp else float("nan"),
            "nps_mean_freq_cyc_mm": sp.mean_freq_cyc_mm if sp else float("nan"),
        }
    return out


def score_phantom(pair: list[H.HeldoutSlice], methods: list[Method]) -> dict[str, Any]:
    """Two realisations of one phantom: quality per realisation, noise from their difference."""
    px = pair[0].pixel_mm
    body = body_mask(pair[0].full_hu)
    outs: dict[str, list[np.ndarray]] = {
        "low": [s.low_hu for s in pair],
        "full": [s.full_hu for s in pair],
    }
    for m in methods:
        outs[m.label] = [m(s.low_hu) for s in pair]
    row: dict[str, Any] = {"name": pair[0].name, "part": "phantom", "size": pair[0].low_hu.shape[0]}
    base = [quality(s.low_hu, s.full_hu) for s in pair]
    row["low_psnr"], row["low_ssim"] = (
        float(np.mean([b[0] for b in base])),
        float(np.mean([b[1] for b in base])),
    )
    for m in methods:
        q = [quality(d, s.full_hu) for d, s in zip(outs[m.label], pair, strict=True)]
        row[f"{m.label}_psnr_gain"] = float(
            np.mean([a[0] - b[0] for a, b in zip(q, base, strict=True)])
        )
        row[f"{m.label}_ssim_gain"] = float(
            np.mean([a[1] - b[1] for a, b in zip(q, base, strict=True)])
        )
    vols = {k: np.stack(v) for k, v in outs.items()}  # 2 "slices" = 2 realisations
    tex = texture(vols, np.stack([body, body]), px, "adjacent")
    for role in outs:
        row[f"{role}_noise_sd_hu"] = tex[role]["noise_sd_hu"]
        row[f"{role}_nps_mean_freq"] = tex[role]["nps_mean_freq_cyc_mm"]
        row[f"{role}_edge_mm"] = edge_mm(vols[role][0], body, px)
    return row


def score_real(s: H.HeldoutSlice, methods: list[Method]) -> dict[str, Any]:
    px = s.pixel_mm
    body = body_mask(s.full_hu)
    outs = {"low": s.low_hu, "full": s.full_hu}
    for m in methods:
        outs[m.label] = m(s.low_hu)
    row: dict[str, Any] = {
        "name": s.name,
        "part": "real",
        "size": s.low_hu.shape[0],
        "pixel_mm": px,
    }
    row["low_psnr"], row["low_ssim"] = quality(s.low_hu, s.full_hu)
    for m in methods:
        p, q = quality(outs[m.label], s.full_hu)
        row[f"{m.label}_psnr_gain"] = p - row["low_psnr"]
        row[f"{m.label}_ssim_gain"] = q - row["low_ssim"]
    tex = texture({k: v[None] for k, v in outs.items()}, body[None], px, "minus_full")
    for role in outs:
        if role != "full":
            row[f"{role}_resid_sd_hu"] = tex[role]["noise_sd_hu"]
            row[f"{role}_resid_nps_mean_freq"] = tex[role]["nps_mean_freq_cyc_mm"]
        row[f"{role}_edge_mm"] = edge_mm(outs[role], body, px)
    if s.info.get("warnings"):
        row["warnings"] = s.info["warnings"]
    return row


def mean_of(rows: list[dict[str, Any]]) -> dict[str, float]:
    keys = [k for k, v in rows[0].items() if isinstance(v, float)]
    return {k: float(np.nanmean([r[k] for r in rows])) for k in keys}


def finite(o: Any) -> Any:
    """NaN/inf -> None, recursively (strict JSON)."""
    if isinstance(o, float):
        return o if math.isfinite(o) else None
    if isinstance(o, dict):
        return {k: finite(v) for k, v in o.items()}
    if isinstance(o, list | tuple):
        return [finite(v) for v in o]
    return o


# -- printing ----------------------------------------------------------------------------------
def print_part(title: str, rows: list[dict[str, Any]], labels: list[str], phantom: bool) -> None:
    print(f"\n== {title}")
    head = f"{'slice':<28}{'low PSNR':>9}" + "".join(
        f"{lab + ' dPSNR':>12}{'dSSIM':>8}" for lab in labels
    )
    print(head)
    for r in [*rows, {"name": "MEAN", **mean_of(rows)}]:
        line = f"{r['name']:<28}{r['low_psnr']:>9.2f}"
        for lab in labels:
            line += f"{r[lab + '_psnr_gain']:>+12.2f}{r[lab + '_ssim_gain']:>+8.3f}"
        print(line)
    mean = mean_of(rows)
    roles = ["full", "low", *labels]
    if phantom:
        print("noise-only (two realisations, TG-233): SD HU | NPS mean freq cyc/mm | vs full")
        for role in roles:
            sd, f = mean[f"{role}_noise_sd_hu"], mean[f"{role}_nps_mean_freq"]
            edge = mean[f"{role}_edge_mm"]
            print(
                f"  {role:<6} SD {sd:6.1f} ({sd / mean['full_noise_sd_hu']:.2f}x)  "
                f"fmean {f:.3f} ({f / mean['full_nps_mean_freq']:.2f}x)  "
                f"edge {edge:.2f} mm ({edge / mean['full_edge_mm']:.2f}x)"
            )
    else:
        print("residual vs full (D(low) - full, TG-233 paired): SD HU | NPS mean freq | edge")
        for role in roles:
            edge = mean[f"{role}_edge_mm"]
            ratio = edge / mean["full_edge_mm"]
            if role == "full":
                print(f"  {role:<6} {'':>26}  edge {edge:.2f} mm (1.00x)")
                continue
            print(
                f"  {role:<6} SD {mean[f'{role}_resid_sd_hu']:6.1f}  "
                f"fmean {mean[f'{role}_resid_nps_mean_freq']:.3f}  "
                f"edge {edge:.2f} mm ({ratio:.2f}x)"
            )


def markdown(result: dict[str, Any]) -> str:
    """The docs tables (docs/benchmarks.md, docs/model-card.md) from a result JSON."""
    labels = [k for k in ("model", "bm3d", "nlm") if k in result["summary"]]
    lines = [
        "| part | slices | low-dose PSNR | "
        + " | ".join(f"{lab} dPSNR / dSSIM" for lab in labels)
        + " |",
        "|---|---|---|" + "---|" * len(labels),
    ]
    for part, title in (("phantom", "(a) held-out phantoms 256^2"), ("real", "(b) real CT 512^2")):
        m = result[part]["mean"]
        if not m:
            continue
        n = len(result[part]["slices"])
        cells = [
            f"{m[lab + '_psnr_gain']:+.2f} dB / {m[lab + '_ssim_gain']:+.3f}" for lab in labels
        ]
        lines.append(f"| {title} | {n} | {m['low_psnr']:.2f} dB | " + " | ".join(cells) + " |")
    cells = [
        f"{result['summary'][lab]['psnr_gain_mean_of_parts']:+.2f} dB / "
        f"{result['summary'][lab]['ssim_gain_mean_of_parts']:+.3f}"
        for lab in labels
    ]
    lines.append("| mean of the two parts | | | " + " | ".join(cells) + " |")
    lines += ["", "| texture and edges | full dose | low dose | " + " | ".join(labels) + " |"]
    lines.append("|---|---|---|" + "---|" * len(labels))
    ph, re_ = result["phantom"]["mean"], result["real"]["mean"]
    if ph:
        for key, what in (
            ("noise_sd_hu", "(a) noise SD, HU"),
            ("nps_mean_freq", "(a) NPS mean freq, cyc/mm"),
        ):
            row = [
                f"{ph[f'{r}_{key}']:.3f}" if "freq" in key else f"{ph[f'{r}_{key}']:.1f}"
                for r in ("full", "low", *labels)
            ]
            lines.append(f"| {what} | " + " | ".join(row) + " |")
        row = [f"{ph[f'{r}_edge_mm']:.2f}" for r in ("full", "low", *labels)]
        lines.append("| (a) edge 10-90 %, mm | " + " | ".join(row) + " |")
    if re_:
        row = ["-"] + [f"{re_[f'{r}_resid_sd_hu']:.1f}" for r in ("low", *labels)]
        lines.append("| (b) residual vs full SD, HU | " + " | ".join(row) + " |")
        row = ["-"] + [f"{re_[f'{r}_resid_nps_mean_freq']:.3f}" for r in ("low", *labels)]
        lines.append("| (b) residual NPS mean freq, cyc/mm | " + " | ".join(row) + " |")
        row = [f"{re_[f'{r}_edge_mm']:.2f}" for r in ("full", "low", *labels)]
        lines.append("| (b) edge 10-90 %, mm | " + " | ".join(row) + " |")
    lines += [
        "",
        "| s per slice | " + " | ".join(labels) + " | BM3D / model |",
        "|---|" + "---|" * (len(labels) + 1),
    ]
    for size, t in result["speed_s_per_slice"].items():
        ratio = f"{t['bm3d'] / t['model']:.1f}x" if "bm3d" in t and "model" in t else "-"
        lines.append(
            f"| {size}x{size} | " + " | ".join(f"{t[lab]:.2f}" for lab in labels) + f" | {ratio} |"
        )
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--checkpoint", default=None, help="model checkpoint (default: the bundled model)"
    )
    ap.add_argument("--quick", action="store_true", help="2 phantoms, 1 real slice")
    ap.add_argument("--phantoms", type=int, default=6, help="held-out phantoms (part a)")
    ap.add_argument("--real", nargs="*", default=None, help="real test files (part b)")
    ap.add_argument("--no-bm3d", action="store_true", help="skip BM3D (slow: ~10-60 s a slice)")
    ap.add_argument(
        "--dose", type=float, default=0.25, help="simulated dose fraction (default quarter dose)"
    )
    ap.add_argument(
        "--cache",
        type=Path,
        default=default_cache(),
        help="folder caching the built held-out set (default: %(default)s)",
    )
    ap.add_argument("--no-cache", action="store_true", help="rebuild the held-out set, keep none")
    ap.add_argument(
        "--avx2",
        action="store_true",
        help="rerun under ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 (an AVX2-only CPU's "
        "kernels for the model; BM3D and NLM do not use oneDNN)",
    )
    ap.add_argument("--markdown", type=Path, default=None, help="print the docs tables of a JSON")
    ap.add_argument("--out", type=Path, default=Path("bench_heldout.json"), help="results JSON")
    args = ap.parse_args()
    if args.avx2 and os.environ.get("ONEDNN_MAX_CPU_ISA") != "AVX2":
        env = {**os.environ, "ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"}
        argv = [a for a in sys.argv[1:] if a != "--avx2"]
        os.execve(sys.executable, [sys.executable, str(Path(__file__).resolve()), *argv], env)
    if args.markdown is not None:
        print(markdown(json.loads(args.markdown.read_text())))
        return 0
    n_ph = 2 if args.quick else args.phantoms
    names = (
        tuple(args.real)
        if args.real is not None
        else (("explicit_VR-UN.dcm",) if args.quick else H.REAL_FILES)
    )
    t_start, cpu_start = time.perf_counter(), time.process_time()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    cpu = cpu_description()
    print(
        f"{cpu}\ntorch {torch.__version__}, {torch.get_num_threads()} threads; "
        f"os.cpu_count {os.cpu_count()}; bm3d {version('bm3d')}, "
        f"scikit-image {version('scikit-image')}; load average {load:.1f}"
    )
    methods, info = load_methods(args.checkpoint, not args.no_bm3d)
    print(
        f"model: {info['model']['name']} {info['model']['checkpoint']} "
        f"(weights sha256 {info['model']['weights_sha256'][:12]}, fp32)"
    )
    ph, real, missing, build_s = build_set(
        n_ph, names, None if args.no_cache else args.cache, args.dose
    )
    print(
        f"held-out set at dose {args.dose:g}: {len(ph)} phantoms x 2 realisations (256^2, "
        f"{H.HELDOUT_FILTER} FBP, "
        f"{H.HELDOUT_VIEWS} views), {len(real)} real slices; built in {build_s:.0f} s"
        + (f"; not found: {', '.join(missing)}" if missing else "")
    )
    labels = [m.label for m in methods]
    ph_rows = [score_phantom(p, methods) for p in ph]
    real_rows = [score_real(s, methods) for s in real]
    if ph_rows:
        print_part(
            f"(a) held-out phantoms 256^2 (dose {args.dose:g}, vs full dose, redcnn profile)",
            ph_rows,
            labels,
            True,
        )
    if real_rows:
        print_part(
            f"(b) real CT (pydicom / pydicom-data), dose {args.dose:g} by noise insertion",
            real_rows,
            labels,
            False,
        )
    speed: dict[str, dict[str, float]] = {}
    print("\n== speed per slice (s), one after the other on this CPU")
    for size in sorted({k for m in methods for k in m.times}):
        speed[str(size)] = {
            m.label: float(np.median(m.times[size])) for m in methods if size in m.times
        }
        row = "  ".join(f"{lab} {t:.3f}" for lab, t in speed[str(size)].items())
        ratio = ""
        if "bm3d" in speed[str(size)]:
            r = speed[str(size)]["bm3d"] / speed[str(size)]["model"]
            ratio = f"  -> model is {r:.1f}x faster than BM3D"
        print(f"  {size}x{size}: {row}{ratio}")
    both = [r for r in (ph_rows and mean_of(ph_rows), real_rows and mean_of(real_rows)) if r]
    summary = (
        {
            lab: {
                "psnr_gain_mean_of_parts": float(np.mean([b[f"{lab}_psnr_gain"] for b in both])),
                "ssim_gain_mean_of_parts": float(np.mean([b[f"{lab}_ssim_gain"] for b in both])),
            }
            for lab in labels
        }
        if both
        else {}
    )
    result = {
        "benchmark": "bench_heldout",
        "cpu": cpu,
        "torch_threads": torch.get_num_threads(),
        "versions": {p: version(p) for p in ("ldct-pipeline", "torch", "bm3d", "scikit-image")},
        "profile": PROFILE,
        "methods": info,
        "heldout": {
            "phantoms": {
                "n": len(ph),
                "realisations": 2,
                "size": H.HELDOUT_SIZE,
                "pixel_mm": H.HELDOUT_PIXEL_MM,
                "filter": H.HELDOUT_FILTER,
                "n_views": H.HELDOUT_VIEWS,
                "dose": args.dose,
            },
            "real": {"files": [s.name for s in real], "missing": missing, "dose": args.dose},
            "build_s": build_s,
        },
        "phantom": {"slices": ph_rows, "mean": mean_of(ph_rows) if ph_rows else {}},
        "real": {"slices": real_rows, "mean": mean_of(real_rows) if real_rows else {}},
        "summary": summary,
        "speed_s_per_slice": speed,
        "wall_s": time.perf_counter() - t_start,
        "process_cpu_s": time.process_time() - cpu_start,
        "load_average_at_start": load,
    }
    args.out.write_text(json.dumps(finite(result), indent=2, default=str))
    print(
        f"\nwall {result['wall_s']:.0f} s (process CPU {result['process_cpu_s']:.0f} s, "
        f"load average {os.getloadavg()[0]:.1f}); results: {args.out}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
