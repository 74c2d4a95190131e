"""The training objective: ``mse_weight * MSE + perceptual.weight * perceptual (+ edge, SSIM)``.

``LossConfig`` is the ``loss:`` section of a training config; :func:`build_objective` turns it
into an ``nn.Module`` whose ``forward(pred, target)`` returns ``(total, components)`` with every
component (unweighted) for logging. MSE is taken in the model range (the whole HU range, so lung
and bone count); the perceptual term in the configured HU window(s). Optional terms reuse the
project's single implementation: the edge-map loss is the MSE between the four Sobel maps of
:mod:`pipeline.models.sobel` (model range, as the reference method's edge layer sees it); the
SSIM loss is ``1 - SSIM`` from :func:`pipeline.evaluate.metrics.ssim` (the metric used everywhere,
differentiable when its input requires grad) in a HU window mapped to [0, 1].

VGG weights are an explicit choice (``perceptual.vgg_weights``): ``imagenet`` (default; a clear
:class:`~pipeline.errors.WeightsError` naming ``ldct weights fetch|import`` when missing),
``file`` (a state dict by path, as the source article) or ``random`` (untrained, seeded). The
choice is exposed as :attr:`Objective.vgg_weights` / :meth:`Objective.describe` so that training
stores it in the checkpoint and reports show it.
"""

from __future__ import annotations

import logging
from enum import Enum
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field, model_validator
from torch import nn

from pipeline.config import StrictModel
from pipeline.intensity import get_window, model_to_window
from pipeline.losses import weights as vgg_weights
from pipeline.losses.perceptual import PerceptualLoss
from pipeline.utils.shapes import check_shape

log = logging.getLogger(__name__)

#: Reference method's layer set (Keras block1_conv2, block2_conv2, block3_conv3, post-ReLU).
DEFAULT_LAYERS: tuple[str, ...] = ("relu1_2", "relu2_2", "relu3_3")
#: lambda: perceptual term = MSE term on simulated quarter-dose error, measured with random VGG
#: weights (benchmarks/bench_perceptual_lambda.py; re-tune with ImageNet weights, see docs).
DEFAULT_PERCEPTUAL_WEIGHT = 0.011


class VggWeights(str, Enum):
    """Where the VGG16 features come from."""

    imagenet = "imagenet"
    file = "file"
    random = "random"


class PerceptualConfig(StrictModel):
    """The perceptual term. ``weight: 0`` disables it (no VGG is built)."""

    weight: float = Field(DEFAULT_PERCEPTUAL_WEIGHT, ge=0)
    layers: list[str] = Field(default_factory=lambda: list(DEFAULT_LAYERS), min_length=1)
    layer_weights: list[float] | None = None
    distance: Literal["l1", "mse"] = "mse"
    windows: list[str] = Field(default_factory=lambda: ["soft_tissue"], min_length=1)
    resize: int | None = None
    style_layers: list[str] = Field(default_factory=list)
    style_weight: float = Field(0.0, ge=0)
    gram_normalize: bool = True
    vgg_weights: VggWeights = VggWeights.imagenet
    vgg_weights_path: Path | None = None
    vgg_seed: int = 0
    precision: Literal["fp32", "bf16"] = "fp32"
    formulation: Literal["direct", "delta"] = "direct"
    channels_last: bool = True
    fold_gray: bool = True

    @model_validator(mode="after")
    def _check(self) -> PerceptualConfig:
        if (self.vgg_weights == VggWeights.file) != (self.vgg_weights_path is not None):
            raise ValueError("vgg_weights_path is required with vgg_weights: file, and only then")
        if len(self.windows) not in (1, 3):
            raise ValueError(f"windows: give 1 or 3 windows, found {len(self.windows)}")
        if self.layer_weights is not None and len(self.layer_weights) != len(self.layers):
            raise ValueError(
                f"layer_weights has {len(self.layer_weights)} entries for {len(self.layers)} layers"
            )
        return self


class LossConfig(StrictModel):
    """The ``loss:`` section of a training config."""

    mse_weight: float = Field(1.0, ge=0)
    edge_weight: float = Field(0.0, ge=0)
    ssim_weight: float = Field(0.0, ge=0)
    ssim_window: str = "soft_tissue"
    ssim_kernel: Literal["gaussian", "uniform"] = "gaussian"
    perceptual: PerceptualConfig = Field(
        default_factory=lambda: PerceptualConfig.model_validate({})
    )

    @model_validator(mode="after")
    def _check(self) -> LossConfig:
        if not any((self.mse_weight, self.perceptual.weight, self.edge_weight, self.ssim_weight)):
            raise ValueError("all loss weights are 0: nothing to optimise")
        get_window(self.ssim_window)  # ConfigError naming the known windows
        return self


def load_vgg_features(cfg: PerceptualConfig) -> tuple[dict[str, torch.Tensor], str]:
    """VGG16 feature tensors for ``cfg`` and a human-readable record of where they came from."""
    if cfg.vgg_weights == VggWeights.imagenet:
        return vgg_weights.load_imagenet_features(), (
            f"imagenet (torchvision {vgg_weights.IMAGENET_FILENAME}, sha256 verified)"
        )
    if cfg.vgg_weights == VggWeights.file:
        assert cfg.vgg_weights_path is not None  # guaranteed by the validator
        from pipeline.utils.files import sha256_file

        feats = vgg_weights.load_features_file(cfg.vgg_weights_path)
        digest = sha256_file(cfg.vgg_weights_path)[:16]
        return feats, f"state dict {cfg.vgg_weights_path} (sha256 {digest}...)"
    return vgg_weights.random_features_state(cfg.vgg_seed), (
        f"random (untrained, seed {cfg.vgg_seed})"
    )


class Objective(nn.Module):
    """``forward(pred, target) -> (total, components)`` for (B, 1, H, W) model-range images.

    ``components`` holds unweighted values: ``mse``, ``perceptual`` (layer-weighted sum) and
    ``perceptual/<layer>``, ``style/<layer>`` per layer, and ``edge`` when its weight is > 0;
    all scalar tensors.
    """

    def __init__(self, cfg: LossConfig, perceptual: PerceptualLoss | None) -> None:
        super().__init__()
        self.cfg = cfg
        self.perceptual = perceptual

    @property
    def vgg_weights(self) -> str:
        """``"imagenet"``, ``"file"``, ``"random (untrained)"`` or ``"none"`` (no perceptual)."""
        if self.perceptual is None:
            return "none"
        kind = self.cfg.perceptual.vgg_weights
        return "random (untrained)" if kind == VggWeights.random else kind.value

    def describe(self) -> dict[str, object]:
        """Plain-data record of the objective for checkpoints and reports."""
        out: dict[str, object] = {"mse_weight": self.cfg.mse_weight, "vgg_weights": "none"}
        if self.cfg.edge_weight > 0:
            out["edge_weight"] = self.cfg.edge_weight
        if self.cfg.ssim_weight > 0:
            out["ssim"] = {
                "weight": self.cfg.ssim_weight,
                "window": self.cfg.ssim_window,
                "kernel": self.cfg.ssim_kernel,
            }

        if self.perceptual is not None:
            out["perceptual_weight"] = self.cfg.perceptual.weight
            out["perceptual"] = self.perceptual.describe()
            out["vgg_weights"] = self.vgg_weights
            out["vgg_weights_detail"] = self.perceptual.weights_description
        return out

    def forward(
        self, pred: torch.Tensor, target: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        check_shape("objective pred", pred, ("B", 1, "H", "W"))
        check_shape("objective target", target, tuple(pred.shape))
        mse = F.mse_loss(pred.float(), target.float())
        components: dict[str, torch.Tensor] = {"mse": mse}
        total = self.cfg.mse_weight * mse
        if self.perceptual is not None:
            perc, terms = self.perceptual(pred, target)
            pl = self.perceptual
            content = sum(
                (w * terms[n] for n, w in zip(pl.layers, pl.layer_weights, strict=True)),
                start=perc.new_zeros(()),
            )
            components["perceptual"] = content
            for k, v in terms.items():
                components[k if k.startswith("style/") else f"perceptual/{k}"] = v
            total = total + self.cfg.perceptual.weight * perc
        if self.cfg.edge_weight > 0:
            from pipeline.models.sobel import sobel_edges

            edge = F.mse_loss(sobel_edges(pred.float()), sobel_edges(target.float()))
            components["edge"] = edge
            total = total + self.cfg.edge_weight * edge
        if self.cfg.ssim_weight > 0:
            from pipeline.evaluate.metrics import ssim

            w = self.cfg.ssim_window
            pw, tw = model_to_window(pred.float(), w), model_to_window(target.float(), w)
            ssim_loss = 1.0 - ssim(pw, tw, data_range=1.0, kernel=self.cfg.ssim_kernel).mean()
            components["ssim"] = ssim_loss
            total = total + self.cfg.ssim_weight * ssim_loss
        return total, components


def build_objective(cfg: LossConfig) -> Objective:
    """Build the objective; loads VGG weights (WeightsError naming the fix when missing)."""
    p = cfg.perceptual
    perceptual = None
    if p.weight > 0:
        if p.precision == "bf16" and p.formulation == "direct":
            log.warning(
                "perceptual loss: bf16 with the direct formulation is wrong near convergence "
                "(features differences drown in bf16 rounding); use formulation: delta"
            )
        feats, description = load_vgg_features(p)
        perceptual = PerceptualLoss(
            feats,
            layers=p.layers,
            layer_weights=p.layer_weights,
            distance=p.distance,
            windows=p.windows,
            resize=p.resize,
            style_layers=p.style_layers,
            style_weight=p.style_weight,
            gram_normalize=p.gram_normalize,
            precision=p.precision,
            formulation=p.formulation,
            channels_last=p.channels_last,
            fold_gray=p.fold_gray,
            weights_description=description,
        )
    return Objective(cfg, perceptual)
