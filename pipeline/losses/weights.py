"""VGG16 weights for the perceptual loss: where they live, how they are verified and loaded.

Three sources, chosen explicitly (never a silent fallback):

* ``imagenet``: torchvision's ``VGG16_Weights.IMAGENET1K_V1`` file ``vgg16-397923af.pth`` in the
  torch hub cache (``$TORCH_HOME/hub/checkpoints``, where torchvision itself looks), verified by
  its full SHA-256. ``ldct weights fetch`` downloads it where a network exists (torch hub's
  downloader, the one torchvision uses); ``ldct weights import FILE`` verifies and installs a copy
  obtained elsewhere.
* ``file``: any VGG16 state dict by path (as the source article loads ``vgg16.pth``); checked for
  the VGG16 layer shapes and recorded with its SHA-256.
* ``random``: untrained Kaiming-normal features (torchvision's VGG initialisation) from a seed,
  for tests and for machines without weights; recorded as "random (untrained)".

Only the ``features`` convolutions are kept: the classifier (90 % of the file) is never needed.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from pipeline.errors import WeightsError
from pipeline.utils.files import atomic_path, sha256_file

log = logging.getLogger(__name__)

#: torchvision's ImageNet VGG16 file (``VGG16_Weights.IMAGENET1K_V1``).
IMAGENET_FILENAME = "vgg16-397923af.pth"
IMAGENET_URL = "https://download.pytorch.org/models/vgg16-397923af.pth"
IMAGENET_SHA256 = "397923af8e79cdbb6a7127f12361acd7a2f83e06b05044ddf496e83de57a5bf0"
IMAGENET_SIZE_BYTES = 553_433_881

#: ``features`` index -> (out_channels, in_channels) of each 3x3 convolution of VGG16.
VGG16_CONVS: dict[int, tuple[int, int]] = {
    0: (64, 3),
    2: (64, 64),
    5: (128, 64),
    7: (128, 128),
    10: (256, 128),
    12: (256, 256),
    14: (256, 256),
    17: (512, 256),
    19: (512, 512),
    21: (512, 512),
    24: (512, 512),
    26: (512, 512),
    28: (512, 512),
}

HOW_TO_GET = (
    "run `ldct weights fetch` (needs internet), or download "
    f"{IMAGENET_URL} elsewhere and run `ldct weights import FILE`; "
    "`ldct weights status` shows what is available"
)


def hub_checkpoint_dir() -> Path:
    """The torch hub checkpoint folder (honours ``TORCH_HOME``), where torchvision looks."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def imagenet_weights_path() -> Path:
    """Where the ImageNet VGG16 file is (or would be) installed."""
    return hub_checkpoint_dir() / IMAGENET_FILENAME


@dataclass(frozen=True)
class WeightsStatus:
    """What ``ldct weights status`` reports about the ImageNet file."""

    path: Path
    exists: bool
    size_bytes: int | None
    sha256: str | None
    verified: bool | None  # None: not checked

    @property
    def usable(self) -> bool:
        return self.exists and self.verified is not False


def weights_status(verify: bool = True) -> WeightsStatus:
    """Look up the ImageNet file in the hub cache; hash it when ``verify``."""
    path = imagenet_weights_path()
    if not path.is_file():
        return WeightsStatus(path, False, None, None, None)
    size = path.stat().st_size
    digest = sha256_file(path) if verify else None
    verified = None if digest is None else digest == IMAGENET_SHA256
    return WeightsStatus(path, True, size, digest, verified)


def verify_imagenet_file(path: Path) -> str:
    """Check size and SHA-256 against torchvision's published file; return the digest."""
    if not path.is_file():
        raise WeightsError("no such file", path=path)
    size = path.stat().st_size
    if size != IMAGENET_SIZE_BYTES:
        raise WeightsError(
            f"size {size} bytes, torchvision's {IMAGENET_FILENAME} has {IMAGENET_SIZE_BYTES} "
            "(truncated download or a different file)",
            path=path,
        )
    digest = sha256_file(path)
    if digest != IMAGENET_SHA256:
        raise WeightsError(
            f"SHA-256 {digest} does not match torchvision's {IMAGENET_FILENAME} "
            f"({IMAGENET_SHA256}); a different or corrupt file. A custom VGG16 state dict can "
            "be used by path instead (loss.perceptual.vgg_weights: file, vgg_weights_path: FILE)",
            path=path,
        )
    return digest


def _torch_load(path: Path) -> Any:
    """Load a pickle-free tensor file; mmap where the format allows (skips the classifier)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError as exc:
        if "mmap" not in str(exc):
            raise
    return torch.load(path, map_location="cpu", weights_only=True)


def features_state(raw: Mapping[str, Any], source: str = "state dict") -> dict[str, torch.Tensor]:
    """Extract and check VGG16 ``features`` conv tensors -> ``{"0.weight": ..., "0.bias": ...}``.

    Accepts a full torchvision VGG16 state dict (``features.N.*`` keys, classifier ignored) or a
    features-only one (``N.*``). Every conv must be present with VGG16's shape.
    """
    if not isinstance(raw, Mapping):
        raise WeightsError(f"{source}: expected a state dict (mapping), found {type(raw).__name__}")
    prefix = "features." if any(str(k).startswith("features.") for k in raw) else ""
    out: dict[str, torch.Tensor] = {}
    for idx, (cout, cin) in VGG16_CONVS.items():
        for part, shape in (("weight", (cout, cin, 3, 3)), ("bias", (cout,))):
            key = f"{prefix}{idx}.{part}"
            if key not in raw:
                raise WeightsError(
                    f"{source}: not a VGG16 state dict, missing {key!r} "
                    f"(found {len(raw)} keys, e.g. {sorted(map(str, raw))[:3]})"
                )
            t = raw[key]
            if not isinstance(t, torch.Tensor) or tuple(t.shape) != shape:
                found = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
                raise WeightsError(f"{source}: {key} has shape {found}, VGG16 expects {shape}")
            if not torch.isfinite(t).all():
                raise WeightsError(f"{source}: {key} contains non-finite values")
            out[f"{idx}.{part}"] = t.detach().to(torch.float32).clone()
    return out


def load_features_file(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a VGG16 state dict file and return its checked ``features`` tensors."""
    p = Path(path)
    if not p.is_file():
        raise WeightsError(f"VGG16 weights file not found; {HOW_TO_GET}", path=p)
    try:
        raw = _torch_load(p)
    except Exception as exc:  # torch raises many types for corrupt/foreign files
        raise WeightsError(
            f"cannot read as a torch state dict ({type(exc).__name__}: {str(exc)[:200]})", path=p
        ) from exc
    return features_state(raw, source=str(p))


def random_features_state(seed: int = 0) -> dict[str, torch.Tensor]:
    """Untrained VGG16 features: Kaiming-normal (fan_out, ReLU) weights, zero bias, as torchvision.

    Uses its own generator, so the global RNG is untouched and a seed always gives the same net.
    """
    gen = torch.Generator().manual_seed(seed)
    out: dict[str, torch.Tensor] = {}
    for idx, (cout, cin) in VGG16_CONVS.items():
        std = (2.0 / (cout * 9)) ** 0.5  # kaiming_normal_(mode="fan_out", nonlinearity="relu")
        out[f"{idx}.weight"] = torch.randn((cout, cin, 3, 3), generator=gen) * std
        out[f"{idx}.bias"] = torch.zeros(cout)
    return out


def load_imagenet_features(verify: bool = True) -> dict[str, torch.Tensor]:
    """The ImageNet features from the hub cache, verified; WeightsError naming the fix if absent."""
    path = imagenet_weights_path()
    if not path.is_file():
        raise WeightsError(
            f"ImageNet VGG16 weights ({IMAGENET_FILENAME}) not found in {path.parent}; "
            f"{HOW_TO_GET}. To train with untrained VGG features instead (recorded in the "
            "checkpoint and reports), set loss.perceptual.vgg_weights: random"
        )
    if verify:
        verify_imagenet_file(path)
    return load_features_file(path)


def import_weights(src: str | Path) -> Path:
    """Verify ``src`` as torchvision's ImageNet VGG16 file and install it into the hub cache."""
    source = Path(src)
    verify_imagenet_file(source)
    load_features_file(source)  # structure check, also reads the whole file once
    dest = imagenet_weights_path()
    if dest.is_file() and dest.resolve() == source.resolve():
        return dest
    with atomic_path(dest) as tmp:
        shutil.copyfile(source, tmp)
    log.info("installed %s -> %s", source, dest)
    return dest


def fetch_weights(progress: bool = True) -> Path:
    """Download the ImageNet file into the hub cache with torch hub's downloader (hash-checked)."""
    dest = imagenet_weights_path()
    if dest.is_file():
        verify_imagenet_file(dest)
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        with atomic_path(dest) as tmp:
            torch.hub.download_url_to_file(
                IMAGENET_URL, str(tmp), hash_prefix=IMAGENET_SHA256[:8], progress=progress
            )
    except (OSError, RuntimeError, ValueError) as exc:
        raise WeightsError(
            f"download of {IMAGENET_URL} failed ({type(exc).__name__}: {str(exc)[:200]}); "
            "without internet, download the file on another machine and run "
            "`ldct weights import FILE`"
        ) from exc
    verify_imagenet_file(dest)
    return dest
