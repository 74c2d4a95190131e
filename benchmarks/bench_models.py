"""Inference speed of the registered models on 512x512 slices, against two baselines measured here.

* roofline: a plain 3x3 conv of the model's width on a 512x512 map (fp32: the faster of NCHW and
  channels-last; bf16 channels-last where bf16 runs); a model's "fraction" is its achieved GFLOP/s
  divided by that conv's GFLOP/s, measured right beside it. Goal (issue 14): the default model at
  >= 50 % of it in fp32, and a 400-slice 512^2 series in < 5 min on 2 AVX2 cores end to end.
* ``--avx2`` reruns everything with oneDNN capped at AVX2 (``ONEDNN_MAX_CPU_ISA=AVX2``), so one
  run prints both CPU classes side by side; the header names the class and CPU model.
* RED-CNN run the way its public code runs it (fp32, NCHW, eager): the >= 10x speed goal.
* bf16 accuracy: mean abs HU difference bf16 vs fp32 of the default model, after a short
  training on a CT-like phantom slice with added noise (an untrained residual net is the
  identity and would make the comparison empty).

Usage: ``.venv/bin/python benchmarks/bench_models.py [--quick] [--avx2] [--threads N]
[--models a,b]``.
"""

from __future__ import annotations

import argparse
import copy
import os
import subprocess
import sys
import time
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from pipeline.intensity import hu_to_model, model_to_hu
from pipeline.models.capability import capability
from pipeline.models.flops import count_flops
from pipeline.models.precision import predict, prepare_for_inference
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


def plain_conv_rates(reps: int, width: int = 64, bf16: bool = True) -> dict[str, float]:
    """GFLOP/s of a 3x3 ``width``->``width`` conv on 512x512: fp32 NCHW and channels-last
    (the faster of the two is the fp32 roofline), and bf16 channels-last where bf16 runs."""
    flops = 2 * width * width * 9 * SIZE * SIZE
    conv = nn.Conv2d(width, width, 3, padding=1).eval()
    x = torch.rand(1, width, SIZE, SIZE)
    out = {}
    with torch.inference_mode():
        out["fp32_nchw"] = flops / _time(lambda: conv(x), reps) / 1e9
        cl = copy.deepcopy(conv).to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        xcl = x.contiguous(memory_format=torch.channels_last)
        out["fp32_cl"] = flops / _time(lambda: cl(xcl), reps) / 1e9
        out["fp32"] = max(out["fp32_nchw"], out["fp32_cl"])
        if bf16:
            cb = cl.to(torch.bfloat16)
            xb = xcl.to(torch.bfloat16)
            out["bf16"] = flops / _time(lambda: cb(xb), reps) / 1e9
    return out


def model_width(model: nn.Module) -> int:
    """The width of the model's first full-resolution conv (what its plain-conv roofline uses)."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d) and m.out_channels > 1:
            return int(m.out_channels)
    return 64


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


def model_rates(name: str, reps: int, bf16: bool) -> dict[str, float]:
    """Slices/s on one 512x512 slice: fp32 eager NCHW, the prepared fp32 path and bf16 path."""
    torch.manual_seed(0)
    model = build_model(name).eval()
    x = torch.rand(1, 1, SIZE, SIZE)
    out = {"gflop": count_flops(model, (1, 1, SIZE, SIZE)) / 1e9, "width": model_width(model)}
    with torch.inference_mode():
        out["eager"] = 1.0 / _time(lambda: model(x), reps)
    fast32 = prepare_for_inference(model, torch.float32)
    out["fp32"] = 1.0 / _time(lambda: predict(fast32, x), reps)
    if bf16:
        fast = prepare_for_inference(model, torch.bfloat16)
        out["bf16"] = 1.0 / _time(lambda: predict(fast, x), reps)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer repetitions, fewer models")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--models", default=None, help="comma-separated names (default: all)")
    ap.add_argument("--no-accuracy", action="store_true", help="skip the bf16 HU-error check")
    ap.add_argument(
        "--avx2",
        action="store_true",
        help="also rerun with oneDNN capped at AVX2 (an AVX2-only CPU), side by side",
    )
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    reps = 2 if args.quick else 4
    cap = capability("cpu")
    bf16 = cap.bf16.runs
    print(f"torch {torch.__version__}, {args.threads} threads, {cap.describe()}")
    if args.models:
        names = args.models.split(",")
    elif args.quick:
        names = [DEFAULT_MODEL, "drle", "unet"]
    else:
        names = [n for n in model_names() if n != "redcnn"]
    names = list(dict.fromkeys(names))
    red = model_rates("redcnn", 1 if args.quick else 2, bf16=False)
    print(f"RED-CNN reference (fp32 eager NCHW, {red['gflop']:.0f} GFLOP): {red['eager']:.3f} sl/s")
    hdr = (
        f"{'model':<12} {'GFLOP':>6} {'width':>5} {'eager sl/s':>10} {'fp32 sl/s':>9} "
        f"{'fp32 frac':>9} {'400 sl fp32':>11}"
    )
    if bf16:
        hdr += f" {'bf16 sl/s':>9} {'bf16 frac':>9}"
    print(hdr)
    print(
        "(frac: achieved GFLOP/s / a plain 3x3 conv of the model's width measured right beside "
        "it; goal >= 50 % in fp32; 400 sl: model time of a 400-slice 512^2 series)"
    )
    for name in names:
        r = model_rates(name, reps, bf16)
        # the roofline is re-measured beside every model: the machine is shared, so ratios of
        # measurements taken seconds apart are more trustworthy than one early roofline
        roof = plain_conv_rates(reps, int(r["width"]), bf16)
        frac32 = r["gflop"] * r["fp32"] / roof["fp32"]
        star = " (default)" if name == DEFAULT_MODEL else ""
        line = (
            f"{name:<12} {r['gflop']:6.1f} {int(r['width']):5d} {r['eager']:10.3f} "
            f"{r['fp32']:9.3f} {frac32:9.0%} {400 / r['fp32'] / 60:9.1f} min"
        )
        if bf16:
            line += f" {r['bf16']:9.3f} {r['gflop'] * r['bf16'] / roof['bf16']:9.0%}"
        print(line + star)
    if bf16 and not args.no_accuracy:
        steps = 30 if args.quick else 150
        trained = quick_train(build_model(DEFAULT_MODEL), steps)
        err = bf16_hu_error(trained)
        print(f"\nbf16 vs fp32, {DEFAULT_MODEL} after {steps} training steps, 512x512 CT-like:")
        for k, v in err.items():
            print(f"  {k:<28} {v:8.3f}")
    elif not bf16:
        print(f"bf16 not measured: {cap.bf16.detail}")
    if args.avx2 and cap.cpu_class != "avx2":
        print("\n== the same, oneDNN capped at AVX2 (ONEDNN_MAX_CPU_ISA=AVX2) ==", flush=True)
        argv = [a for a in sys.argv[1:] if a != "--avx2"]
        env = {**os.environ, "ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"}
        subprocess.run([sys.executable, __file__, *argv, "--no-accuracy"], env=env, check=True)


if __name__ == "__main__":
    main()
