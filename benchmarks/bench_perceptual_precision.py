"""Is a bf16 VGG path safe for the perceptual loss? Loss error and gradient direction vs fp32.

For noise levels from 10 % down to 0.1 % (SD of white noise relative to the soft-tissue window
width, 400 HU: 40 HU down to 0.4 HU, i.e. from quarter-dose input down to where training ends
up), on CT-like 64x64 patches (the project's phantom), the default perceptual loss (relu1_2,
relu2_2, relu3_3, MSE, soft-tissue window) is computed four ways:

* fp32 direct (reference), fp32 delta;
* bf16 direct: both images through VGG16 under bf16 autocast, the features subtracted;
* bf16 delta: the convolutions act on the feature *difference* in bf16
  (``formulation: delta``, see pipeline/losses/vgg.py ``forward_delta``).

Printed per level: relative loss error |L - L_fp32| / L_fp32, cosine similarity of the input
gradient with the fp32 one, and the fwd+bwd CPU time. Weights: random (seeded) unless
``--weights imagenet`` (the feature statistics, hence the exact numbers, depend on them).

    .venv/bin/python benchmarks/bench_perceptual_precision.py [--quick] [--weights imagenet]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
import torch.nn.functional as F

from pipeline.intensity import hu_to_model
from pipeline.losses.objective import PerceptualConfig, load_vgg_features
from pipeline.losses.perceptual import PerceptualLoss
from pipeline.simulate.phantom import make_phantom

LEVELS = (0.10, 0.05, 0.02, 0.01, 0.005, 0.002, 0.001)
VARIANTS = (("fp32", "direct"), ("fp32", "delta"), ("bf16", "direct"), ("bf16", "delta"))


def ct_patches(n: int, size: int) -> torch.Tensor:
    """(n, 1, size, size) model-range patches from the phantom, centred in the body."""
    ph = make_phantom(2, 256, seed=3)
    rng = np.random.default_rng(0)
    z, y, x = np.nonzero(ph.hu[:, size // 2 : -size // 2, size // 2 : -size // 2] > -300)
    pick = rng.choice(len(z), n, replace=False)
    arr = np.stack([ph.hu[z[i], y[i] : y[i] + size, x[i] : x[i] + size] for i in pick])
    return hu_to_model(torch.from_numpy(arr[:, None]).float())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="8 patches, 1 timing round")
    ap.add_argument("--weights", default="random", choices=["random", "imagenet"])
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cfg = PerceptualConfig.model_validate({"vgg_weights": args.weights})
    feats, desc = load_vgg_features(cfg)
    target = ct_patches(8 if args.quick else 16, 64)
    losses = {
        v: PerceptualLoss(feats, precision=v[0], formulation=v[1], weights_description=desc)
        for v in VARIANTS
    }
    g = torch.Generator().manual_seed(0)
    noise = torch.randn(target.shape, generator=g)
    width_model = 400.0 / 4095.0  # soft-tissue window width in model units
    print(f"VGG weights: {desc}; {target.shape[0]} patches 64x64, {args.threads} thread(s)")
    print(f"{'noise':>6s}  " + "  ".join(f"{p + ' ' + f:>22s}" for p, f in VARIANTS))
    print(f"{'':>6s}  " + "  ".join(f"{'rel.err   cos(grad)':>22s}" for _ in VARIANTS))
    times: dict[tuple[str, str], list[float]] = {v: [] for v in VARIANTS}
    for level in LEVELS:
        pred = target + level * width_model * noise
        res = {}
        for v, fn in losses.items():
            x = pred.clone().requires_grad_(True)
            c0 = time.process_time()
            loss, _ = fn(x, target)
            loss.backward()
            times[v].append(time.process_time() - c0)
            assert x.grad is not None
            res[v] = (loss.item(), x.grad.flatten())
        ref_l, ref_g = res[("fp32", "direct")]
        cells = []
        for v in VARIANTS:
            lv, gv = res[v]
            cos = F.cosine_similarity(gv.double(), ref_g.double(), dim=0).item()
            cells.append(f"{abs(lv - ref_l) / ref_l:9.2e} {cos:12.6f}")
        print(f"{100 * level:5.1f}%  " + "  ".join(cells))
    print("fwd+bwd CPU s (median over levels): " + ", ".join(
        f"{p} {f} {statistics.median(times[(p, f)][1:]):.3f}" for p, f in VARIANTS
    ))  # fmt: skip


if __name__ == "__main__":
    main()
