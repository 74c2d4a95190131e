"""Checkpoint format shared by training and denoising.

A checkpoint is one ``torch.save`` file holding only plain data and tensors, so it loads with
``torch.load(weights_only=True)`` (no pickled code runs)::

    {"format": "ldct-pipeline-checkpoint", "format_version": 1,
     "model_name": str, "model_params": dict, "state_dict": {name: tensor},
     "weights_sha256": str, "package_version": str, "torch_version": str,
     "created_utc": str, "extra": dict (JSON-compatible training info)}

``weights_sha256`` hashes the state dict (names, dtypes, shapes, bytes) in a canonical order, so it
identifies the weights independently of the file's container bytes; :func:`model_hash` is its
short stable form, used by denoising for derived UIDs and manifests. Writes are atomic.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from pydantic import ValidationError
from torch import nn

from pipeline import __version__
from pipeline.errors import CheckpointError, ConfigError
from pipeline.models.registry import ModelConfig, build_model, get_spec
from pipeline.utils.files import atomic_path

CHECKPOINT_FORMAT = "ldct-pipeline-checkpoint"
CHECKPOINT_VERSION = 1
#: Length of the short model hash (hex characters of the weights' SHA-256).
MODEL_HASH_LEN = 16
#: a model needing more parameter memory (fp32) is refused before it is built; the models of
#: this project need a few MB; ``LDCT_MAX_MODEL_MB`` raises the limit
MAX_MODEL_BYTES = int(float(os.environ.get("LDCT_MAX_MODEL_MB", "2048")) * 2**20)


@dataclass
class LoadedCheckpoint:
    """A loaded checkpoint: the rebuilt model (eval mode), its config, metadata and weight hash."""

    model: nn.Module
    model_cfg: dict[str, Any]
    meta: dict[str, Any]
    sha256: str

    @property
    def model_hash(self) -> str:
        """Short stable hash ``<name>-<16 hex>`` of model name and weights."""
        return f"{self.model_cfg['name']}-{self.sha256[:MODEL_HASH_LEN]}"


def state_dict_sha256(state_dict: dict[str, torch.Tensor]) -> str:
    """SHA-256 over names, dtypes, shapes and raw bytes of a state dict, in sorted key order."""
    h = hashlib.sha256()
    for key in sorted(state_dict):
        t = state_dict[key].detach().to("cpu").contiguous()
        h.update(f"{key}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def model_hash(model: nn.Module, name: str) -> str:
    """The short stable model hash of an in-memory model (same as the loaded checkpoint's)."""
    return f"{name}-{state_dict_sha256(model.state_dict())[:MODEL_HASH_LEN]}"


def _normalise_cfg(model_cfg: ModelConfig | dict[str, Any]) -> dict[str, Any]:
    try:
        cfg = (
            model_cfg
            if isinstance(model_cfg, ModelConfig)
            else ModelConfig.model_validate(model_cfg)
        )
    except ValidationError as exc:
        raise ConfigError(
            f"model_cfg must look like {{'name': ..., 'params': {{...}}}}: {exc}"
        ) from exc
    get_spec(cfg.name)
    return {"name": cfg.name, "params": json.loads(json.dumps(cfg.params))}


def save_checkpoint(
    path: str | Path,
    model: nn.Module,
    model_cfg: ModelConfig | dict[str, Any],
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write ``model``'s weights plus config and metadata atomically to ``path``.

    ``extra`` must be JSON-compatible (training info: losses, VGG weights origin, metrics, ...).
    """
    cfg = _normalise_cfg(model_cfg)
    try:
        extra_plain = json.loads(json.dumps(extra or {}))
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"checkpoint extra must be JSON-compatible: {exc}") from exc
    state = {k: v.detach().to("cpu").clone() for k, v in model.state_dict().items()}
    payload = {
        "format": CHECKPOINT_FORMAT,
        "format_version": CHECKPOINT_VERSION,
        "model_name": cfg["name"],
        "model_params": cfg["params"],
        "state_dict": state,
        "weights_sha256": state_dict_sha256(state),
        "package_version": str(__version__),
        "torch_version": str(torch.__version__),
        "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "extra": extra_plain,
    }
    target = Path(path)
    with atomic_path(target) as tmp:
        torch.save(payload, tmp)
    return target


def _read_payload(p: Path, map_location: str | torch.device) -> dict[str, Any]:
    if not p.is_file():
        raise CheckpointError("checkpoint file not found", path=p)
    try:
        payload = torch.load(p, map_location=map_location, weights_only=True)
    except Exception as exc:  # a corrupt file can fail anywhere inside the unpickler
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if "Weights only load failed" in first:
            first = "it holds objects other than tensors and plain data (refused: weights_only)"
        raise CheckpointError(
            f"not a readable checkpoint (corrupt or not torch): {first}", path=p
        ) from exc
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"not an ldct-pipeline checkpoint (missing format tag {CHECKPOINT_FORMAT!r})", path=p
        )
    version = payload.get("format_version")
    if version != CHECKPOINT_VERSION:
        raise CheckpointError(
            f"checkpoint format version {version} is not supported "
            f"(this ldct-pipeline {__version__} reads version {CHECKPOINT_VERSION})",
            path=p,
        )
    return payload


def check_finite_weights(state: dict[str, Any], path: Path) -> None:
    """Refuse weights holding NaN or inf: such a model denoises every series into garbage."""
    bad = []
    for key in sorted(state):
        t = state[key]
        if isinstance(t, torch.Tensor) and (t.is_floating_point() or t.is_complex()):
            n = int(t.numel() - torch.isfinite(t).sum().item())
            if n:
                bad.append(f"{key} ({n} of {t.numel()})")
    if bad:
        more = f" and {len(bad) - 3} more" if len(bad) > 3 else ""
        raise CheckpointError(
            f"weights hold non-finite values (NaN/inf) in {len(bad)} tensor(s): "
            f"{', '.join(bad[:3])}{more}; refused (the model's output would be garbage)",
            path=path,
        )


def check_model_size(name: str, params: dict[str, Any], path: Path) -> None:
    """Refuse a model whose parameters would need more than :data:`MAX_MODEL_BYTES`.

    The model is built on PyTorch's ``meta`` device (shapes only, nothing allocated), so a
    checkpoint asking for 30,000 channels is refused in milliseconds instead of allocating
    tens of GB first. Models that cannot be built on ``meta`` are left to the real build.
    """
    try:
        with torch.device("meta"):
            probe = build_model(name, **params)
        n = sum(t.numel() for t in probe.parameters()) + sum(b.numel() for b in probe.buffers())
    except Exception:  # unknown model / bad params: the real build reports it clearly
        return
    if n * 4 > MAX_MODEL_BYTES:
        raise CheckpointError(
            f"implausible model: {name!r} with {params} has {n:,} parameters "
            f"({n * 4 / 2**30:.1f} GiB in fp32; limit {MAX_MODEL_BYTES / 2**30:.1f} GiB, set "
            "LDCT_MAX_MODEL_MB to raise it); refused before allocating",
            path=path,
        )


def load_checkpoint(
    path: str | Path,
    map_location: str | torch.device = "cpu",
    expected_model: str | None = None,
) -> LoadedCheckpoint:
    """Load a checkpoint, rebuild its model (eval mode) and verify the weight hash.

    Raises :class:`CheckpointError` for a missing or corrupt file, another format version, a
    model other than ``expected_model`` (when given), an unknown model or mismatching weights.
    """
    p = Path(path)
    payload = _read_payload(p, map_location)
    name = payload.get("model_name")
    params = payload.get("model_params") or {}
    if expected_model is not None and name != expected_model:
        raise CheckpointError(
            f"checkpoint holds model {name!r}, expected {expected_model!r}", path=p
        )
    state = payload.get("state_dict")
    if not isinstance(state, dict):
        raise CheckpointError("checkpoint has no state_dict", path=p)
    check_model_size(str(name), params if isinstance(params, dict) else {}, p)
    check_finite_weights(state, p)
    sha = state_dict_sha256(state)
    if sha != payload.get("weights_sha256"):
        raise CheckpointError(
            "weights do not match their recorded SHA-256 (file corrupt or edited): "
            f"recorded {str(payload.get('weights_sha256'))[:16]}..., found {sha[:16]}...",
            path=p,
        )
    try:
        model = build_model(str(name), **params)
    except ConfigError as exc:
        raise CheckpointError(f"cannot rebuild model from checkpoint: {exc}", path=p) from exc
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise CheckpointError(
            f"weights do not fit model {name!r} with {params}: {first}", path=p
        ) from exc
    model.to(map_location).eval()
    meta = {k: v for k, v in payload.items() if k != "state_dict"}
    return LoadedCheckpoint(
        model=model, model_cfg={"name": name, "params": dict(params)}, meta=meta, sha256=sha
    )
