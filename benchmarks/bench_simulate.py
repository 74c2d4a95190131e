"""Low-dose simulation speed: our batched torch projector/FBP vs scikit-image radon/iradon.

Both sides do the same work per slice -- project the phantom (HU -> mu), draw Poisson +
electronic noise at the same calibrated I0 x dose, log, Hann-filtered FBP -- with the same number
of views and (one-pixel) detector bins, so the noise statistics match; the noise SD each side
measures in the liver/soft tissue is printed next to its speed to show that. Ours runs batched
(all slices in one sparse-matrix product); the one-time system-matrix build is reported apart
and also amortised over the slices. Run: ``.venv/bin/python benchmarks/bench_simulate.py
[--quick] [--size N] [--slices K]``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from skimage.transform import iradon, radon

from pipeline.simulate import matrices
from pipeline.simulate.geometry import ParallelGeometry, hu_to_mu, mu_to_hu
from pipeline.simulate.lowdose import insert_noise
from pipeline.simulate.matrices import sim_threads
from pipeline.simulate.noise import _log_measure, calibrate_noise
from pipeline.simulate.phantom import make_phantom
from pipeline.simulate.projector import fbp, forward_project

DOSE = 0.25


def run(size: int, n_slices: int) -> None:
    ph = make_phantom(n_slices, size, seed=0, z_start_mm=80.0)
    geom = ParallelGeometry.for_image(size, ph.spacing_mm[1])
    noise = calibrate_noise(geom)
    hu = np.where(_outside(size), np.float32(-1000.0), ph.hu)
    mu = hu_to_mu(hu)
    px = geom.pixel_mm
    theta_deg = np.degrees(geom.angles().numpy())
    print(
        f"{n_slices} slices of {size}x{size}, {geom.n_views} views, dose {DOSE}, "
        f"I0 {noise.i0:.3g}, torch threads {torch.get_num_threads()}"
    )

    t0 = time.perf_counter()
    matrices.forward_matrix(geom)
    matrices.back_matrix(geom)
    t_build = time.perf_counter() - t0

    def simulate_ours() -> np.ndarray:
        gen = torch.Generator().manual_seed(0)
        p = forward_project(mu, geom)
        photons = torch.poisson(noise.i0 * DOSE * torch.exp(-p.double()), generator=gen)
        return mu_to_hu(fbp(_log_measure(photons, noise, DOSE, gen), geom, "hann")).numpy()

    simulate_ours()  # warm-up: first calls pay allocator/FFT-plan set-up
    t0 = time.perf_counter()
    ours = simulate_ours()
    t_ours = time.perf_counter() - t0

    gen = torch.Generator().manual_seed(0)
    sk = np.empty_like(hu)
    radon(mu[0].numpy().astype(np.float64), theta_deg[:4], circle=True)  # warm-up
    t0 = time.perf_counter()
    for k in range(n_slices):
        sino = radon(mu[k].numpy().astype(np.float64), theta_deg, circle=True) * px
        expected = torch.from_numpy(noise.i0 * DOSE * np.exp(-sino.T))
        photons_k = torch.poisson(expected, generator=gen)
        p_noisy = _log_measure(photons_k, noise, DOSE, gen).numpy().T.astype(np.float64)
        rec = iradon(p_noisy, theta_deg, circle=True, filter_name="hann") / px
        sk[k] = mu_to_hu(torch.from_numpy(rec)).numpy()
    t_sk = time.perf_counter() - t0

    insert_noise(hu, px, DOSE, seed=0)  # warm-up
    t0 = time.perf_counter()
    insert_noise(hu, px, DOSE, seed=0)
    t_ins = time.perf_counter() - t0

    clean = mu_to_hu(fbp(forward_project(mu, geom), geom, "hann")).numpy()
    tissue = (hu > 20) & (hu < 100) & ~_outside(size)
    sd_ours = float((ours - clean)[tissue].std())
    sd_sk = float((sk - clean)[tissue].std())
    rate_ours, rate_sk = n_slices / t_ours, n_slices / t_sk
    rate_amort = n_slices / (t_ours + t_build)
    print(f"{'method':46s} {'slices/s':>9s} {'noise SD (HU)':>14s}")
    print(f"{'scikit-image radon + noise + iradon (per slice)':46s} {rate_sk:9.2f} {sd_sk:14.1f}")
    print(f"{'ours, batched torch (matrices cached)':46s} {rate_ours:9.2f} {sd_ours:14.1f}")
    print(f"{'ours, incl. one-time matrix build':46s} {rate_amort:9.2f}")
    print(f"{'ours, noise insertion into full dose (mode b)':46s} {n_slices / t_ins:9.2f}")
    print(f"matrix build {t_build:.1f} s (once per geometry and process)")
    print(
        f"speed-up vs scikit-image: {rate_ours / rate_sk:.1f}x cached, "
        f"{rate_amort / rate_sk:.1f}x incl. build; noise SD ratio {sd_ours / sd_sk:.2f}"
    )


def _outside(size: int) -> np.ndarray:
    c = np.arange(size) - (size - 1) / 2.0
    return (c[None, :] ** 2 + c[:, None] ** 2) > ((size - 1) / 2.0 + 0.5) ** 2


def main() -> None:
    """Parse options and run both sides in one process (same load, same thread count)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="128x128, 4 slices (seconds)")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--slices", type=int, default=16)
    args = ap.parse_args()
    size, n = (128, 4) if args.quick else (args.size, args.slices)
    with sim_threads():  # the same thread count the library uses (LDCT_SIM_THREADS, default 1)
        run(size, n)


if __name__ == "__main__":
    main()
