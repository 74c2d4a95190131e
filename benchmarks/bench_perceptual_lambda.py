"""Choose lambda (perceptual weight): the ratio perceptual / MSE on simulated quarter-dose noise.

The objective is ``MSE + lambda * perceptual``. lambda is set so that both terms are equal on
the error a denoiser starts from: quarter-dose minus full-dose of the same anatomy, simulated
with the project's projection-domain noise model (band-pass CT noise, not white noise), over
64x64 patches inside the body. With the ``mse`` feature distance both terms scale with the
square of the error, so the balance holds as training lowers the error (printed for 25 %, 50 %
and 100 % of that error).

The ratio depends on the VGG weights: run it with ``--weights imagenet`` (after
``ldct weights import``) to re-tune; the shipped default was measured with random weights
(no ImageNet weights are available on the development machines).

    .venv/bin/python benchmarks/bench_perceptual_lambda.py [--quick] [--weights random|imagenet]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from pipeline.intensity import hu_to_model
from pipeline.losses.objective import DEFAULT_PERCEPTUAL_WEIGHT, LossConfig, build_objective
from pipeline.simulate.lowdose import simulate_pair
from pipeline.simulate.phantom import DEFAULT_FOV_MM, make_phantom


def patches(vol: np.ndarray, body: np.ndarray, size: int, n: int, seed: int) -> np.ndarray:
    """``n`` (size x size) patches whose centres lie inside the body mask, (n, 1, size, size)."""
    rng = np.random.default_rng(seed)
    z, y, x = np.nonzero(body[:, size // 2 : -size // 2, size // 2 : -size // 2])
    pick = rng.choice(len(z), n, replace=False)
    out = [vol[z[i], y[i] : y[i] + size, x[i] : x[i] + size] for i in pick]
    return np.stack(out)[:, None]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--weights", default="random", choices=["random", "imagenet"])
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    size = 128 if args.quick else 256
    n_slices = 2 if args.quick else 4
    t0 = time.perf_counter()
    ph = make_phantom(n_slices, size, seed=1)
    pair = simulate_pair(ph.hu, DEFAULT_FOV_MM / size, 0.25, seed=0)
    body = ph.hu > -300
    psize = 32 if args.quick else 64
    n = 16
    full = patches(pair.full_hu, body, psize, n, 0)
    low = patches(pair.low_hu, body, psize, n, 0)
    sd_hu = float(np.std(pair.low_hu[body] - pair.full_hu[body]))
    print(f"simulated {n_slices} slices {size}^2 in {time.perf_counter() - t0:.1f} s; "
          f"(low - full) SD in body {sd_hu:.1f} HU")  # fmt: skip
    cfg = LossConfig.model_validate({"perceptual": {"vgg_weights": args.weights, "weight": 1.0}})
    obj = build_objective(cfg)
    print(f"VGG weights: {obj.describe()['vgg_weights_detail']}")
    target = hu_to_model(torch.from_numpy(full).float())
    err = hu_to_model(torch.from_numpy(low).float()) - target
    print(f"{'error scale':>12s} {'MSE':>11s} {'perceptual':>11s} {'ratio P/MSE':>12s}")
    ratios = []
    for scale in (1.0, 0.5, 0.25):
        _, comp = obj(target + scale * err, target)
        r = float(comp["perceptual"] / comp["mse"])
        ratios.append(r)
        print(f"{scale:12.2f} {float(comp['mse']):11.3e} {float(comp['perceptual']):11.3e} "
              f"{r:12.1f}")  # fmt: skip
    lam = 1.0 / ratios[0]
    print(f"lambda for equal terms at quarter-dose error: {lam:.3g} "
          f"(shipped default {DEFAULT_PERCEPTUAL_WEIGHT:g})")  # fmt: skip


if __name__ == "__main__":
    main()
