"""Inference speed of the registered models on 512x512 slices, against two baselines measured here.

* roofline: a plain 3x3 64->64 conv on a 512x512 map, bf16 channels-last (and fp32 NCHW); a
  model's "fraction" is its achieved GFLOP/s divided by the plain conv's bf16 GFLOP/s.
* RED-CNN run the way its public code runs it (fp32, NCHW, eager): the >= 10x speed goal.
* bf16 accuracy: mean abs HU difference bf16 vs fp32 of the default model, after a short
  training on a CT-like phantom slice with added noise (an untrained residual net is the
  identity and would make the comparison empty).

Usage: ``.venv/bin/python benchmarks/bench_models.py [--quick] [--threads N] [--models a,b]``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from pipeline.data.intensity import hu_to_model, model_to_hu
from pipeline.models.flops import count_flops
from pipeline.models.precision import cpu_capability, predict, prepare_for_inference
from pipeline.models.registry import DEFAULT_MODEL, build_model, model_names

SIZE = 512


def _time(fn: Callable[[], object], reps: int) -> float:
    """Best-of-``reps`` wall time of ``fn`` (best, because the machine is shared)."""
    fn()  # warm-up (oneDNN primitive creation)
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def plain_conv_rates(reps: int) -> dict[str, float]:
    """GFLOP/s of a 3x3 64->64 conv on 512x512 (fp32 NCHW, bf16 channels-last)."""
    flops = 2 * 64 * 64 * 9 * SIZE * SIZE
    conv = nn.Conv2d(64, 64, 3, padding=1).eval()
    x = torch.rand(1, 64, SIZE, SIZE)
    out = {}
    with torch.inference_mode():
        out["fp32"] = flops / _time(lambda: conv(x), reps) / 1e9
        cb = nn.Conv2d(64, 64, 3, padding=1).eval().to(torch.bfloat16)
        cb = cb.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        xb = x.to(torch.bfloat16).contiguous(memory_format=torch.channels_last)
        out["bf16"] = flops / _time(lambda: cb(xb), reps) / 1e9
    return out


def ct_like_pair(size: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(noisy, clean) model-range slices of a CT-like phantom (pipeline.simulate) + noise."""
    try:
        from pipeline.simulate.phantom import make_phantom

        clean_hu = make_phantom(1, size, seed).hu[0].astype(np.float32)
    except ImportError:  # simulate not installed: Shepp-Logan scaled to HU
        from skimage.data import shepp_logan_phantom
        from skimage.transform import resize

        clean_hu = (-1000.0 + 2000.0 * resize(shepp_logan_phantom(), (size, size))).astype(
            np.float32
        )
    rng = np.random.default_rng(seed)
    from scipy.ndimage import gaussian_filter

    noise = gaussian_filter(rng.normal(0.0, 1.0, clean_hu.shape), 0.8)
    noisy_hu = clean_hu + 40.0 * noise / noise.std()  # ~40 HU SD, correlated like FBP noise
    clean = hu_to_model(torch.from_numpy(clean_hu))[None, None]
    noisy = hu_to_model(torch.from_numpy(noisy_hu.astype(np.float32)))[None, None]
    return noisy, clean


def quick_train(model: nn.Module, steps: int, seed: int = 0) -> nn.Module:
    """A few Adam steps (MSE, 64x64 patches) so the net makes a realistic correction."""
    torch.manual_seed(seed)
    noisy, clean = ct_like_pair(256, seed)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    for _ in range(steps):
        ys = torch.randint(0, 256 - 64, (8,))
        xs = torch.randint(0, 256 - 64, (8,))
        a = torch.cat([noisy[..., y : y + 64, x : x + 64] for y, x in zip(ys, xs, strict=True)])
        b = torch.cat([clean[..., y : y + 64, x : x + 64] for y, x in zip(ys, xs, strict=True)])
        loss = (model(a) - b).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


def bf16_hu_error(model: nn.Module) -> dict[str, float]:
    """Mean/max abs HU difference bf16 (fused and autocast paths) vs fp32 on a 512 slice."""
    noisy, clean = ct_like_pair(SIZE, seed=1)
    ref = model_to_hu(predict(model, noisy, "fp32"))
    fused = model_to_hu(predict(prepare_for_inference(model, torch.bfloat16), noisy))
    auto = model_to_hu(predict(model, noisy, "bf16"))
    return {
        "correction_mean_abs_hu": float((ref - model_to_hu(noisy)).abs().mean()),
        "noise_before_hu": float((model_to_hu(noisy) - model_to_hu(clean)).abs().mean()),
        "noise_after_hu": float((ref - model_to_hu(clean)).abs().mean()),
        "bf16_fused_mean_abs_hu": float((fused - ref).abs().mean()),
        "bf16_fused_max_abs_hu": float((fused - ref).abs().max()),
        "bf16_autocast_mean_abs_hu": float((auto - ref).abs().mean()),
    }


def model_rates(name: str, reps: int) -> dict[str, float]:
    """Slices/s of a model on one 512x512 slice: fp32 NCHW eager and bf16 fast path."""
    torch.manual_seed(0)
    model = build_model(name).eval()
    x = torch.rand(1, 1, SIZE, SIZE)
    gflop = count_flops(model, (1, 1, SIZE, SIZE)) / 1e9
    with torch.inference_mode():
        t32 = _time(lambda: model(x), reps)
    fast = prepare_for_inference(model, torch.bfloat16)
    tbf = _time(lambda: predict(fast, x), reps)
    return {"gflop": gflop, "fp32": 1.0 / t32, "bf16": 1.0 / tbf}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer repetitions, fewer models")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--models", default=None, help="comma-separated names (default: all)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    reps = 2 if args.quick else 4
    cap = cpu_capability()
    print(
        f"torch {torch.__version__}, {args.threads} threads, capability {cap.torch_capability}, "
        f"amx_bf16={cap.amx_bf16}, avx512_bf16={cap.avx512_bf16}"
    )
    roof = plain_conv_rates(reps)
    print(
        f"plain 3x3 64->64 conv 512x512: fp32 NCHW {roof['fp32']:.0f} GFLOP/s, "
        f"bf16 channels-last {roof['bf16']:.0f} GFLOP/s (roofline)"
    )
    if args.models:
        names = args.models.split(",")
    elif args.quick:
        names = [DEFAULT_MODEL, "drle", "unet"]
    else:
        names = [n for n in model_names() if n != "redcnn"]
    names = list(dict.fromkeys(names))
    red = model_rates("redcnn", 1 if args.quick else 2)
    red_fp32 = red["fp32"]
    print(
        f"\nRED-CNN reference (fp32 NCHW, {red['gflop']:.0f} GFLOP/slice): {red_fp32:.3f} slices/s"
    )
    hdr = f"{'model':<12} {'GFLOP':>7} {'fp32 sl/s':>10} {'bf16 sl/s':>10} {'bf16 frac':>9} "
    print("\n" + hdr + f"{'bf16/RED-CNN fp32':>18}")
    print("(bf16 frac: achieved GFLOP/s / plain-conv bf16 GFLOP/s measured right beside it)")
    for name in names:
        r = model_rates(name, reps)
        # the roofline is re-measured beside every model: the machine is shared, so ratios of
        # measurements taken seconds apart are more trustworthy than one early roofline
        local = max(plain_conv_rates(reps)["bf16"], 1e-9)
        frac = r["gflop"] * r["bf16"] / local
        star = " (default)" if name == DEFAULT_MODEL else ""
        print(
            f"{name:<12} {r['gflop']:7.1f} {r['fp32']:10.3f} {r['bf16']:10.3f} "
            f"{frac:9.0%} {r['bf16'] / red_fp32:17.1f}x{star}"
        )
    steps = 30 if args.quick else 150
    trained = quick_train(build_model(DEFAULT_MODEL), steps)
    err = bf16_hu_error(trained)
    print(f"\nbf16 vs fp32, {DEFAULT_MODEL} after {steps} training steps, 512x512 CT-like slice:")
    for k, v in err.items():
        print(f"  {k:<28} {v:8.3f}")


if __name__ == "__main__":
    main()
