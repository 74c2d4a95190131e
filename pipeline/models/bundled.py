"""The bundled model: a small checkpoint shipped in ``pipeline/assets`` with its SHA-256.

A ``unet-nn-s`` (MONAI BasicUNet + Sobel edge layer, blind, with a full-resolution refinement
head and the low-cut guard) trained by ``ldct train --config configs/train_default_stage1.yaml``
then ``--config configs/train_default.yaml`` on the project's generated training set (see
``docs/model-card.md``): ``ldct denoise``'s default, a starting point, not for clinical use. It
lives in ``models`` (not ``train``) because inference loads it and must not import training.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from pipeline.errors import CheckpointError
from pipeline.utils.files import sha256_file

DEMO_MODEL_NAME = "demo_model.pt"
DEMO_MODEL_SHA256_NAME = "demo_model.sha256"


def _assets() -> Path:
    return Path(str(resources.files("pipeline") / "assets"))


def bundled_model_sha256() -> str:
    """The recorded SHA-256 (hex) of the bundled checkpoint file."""
    p = _assets() / DEMO_MODEL_SHA256_NAME
    if not p.is_file():
        raise CheckpointError("the bundled demo model's checksum file is missing", path=p)
    return p.read_text(encoding="utf-8").split()[0].strip().lower()


def bundled_model_path(verify: bool = True) -> Path:
    """Path of the bundled demo checkpoint; verifies its SHA-256 unless ``verify`` is False.

    Raises :class:`CheckpointError` when the file is missing or does not match its checksum.
    """
    p = _assets() / DEMO_MODEL_NAME
    if not p.is_file():
        raise CheckpointError(
            "this installation has no bundled demo model; pass a checkpoint from `ldct train`",
            path=p,
        )
    if verify:
        expected = bundled_model_sha256()
        found = sha256_file(p)
        if found != expected:
            raise CheckpointError(
                f"bundled demo model does not match its checksum: expected sha256 {expected}, "
                f"found {found}",
                path=p,
            )
    return p
