"""Baseline: the source article's ``VGGPerceptualLoss``, re-implemented from its description.

Not project code: this is the yardstick that ``pipeline.losses`` is checked against (equal values
in tests/losses) and timed against (benchmarks/bench_perceptual.py). As described in the article
(shared/seed/): torchvision's ``vgg16().features`` split into four blocks ``[:4]``, ``[4:9]``,
``[9:16]``, ``[16:23]`` (ending at relu1_2, relu2_2, relu3_3, relu4_3), parameters frozen, eval
mode; a 1-channel image is repeated to 3 channels, ImageNet-normalised, optionally resized to
224x224 (bilinear, the article's default), then every block is run in turn and the L1 distance
of the feature maps of ``feature_layers`` (and of unnormalised Gram matrices of
``style_layers``) is summed. Weights come from a torchvision state dict file, as in the
article, or (for tests, to avoid a 528 MB file) from a ``features`` state dict.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
import torchvision
from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def torchvision_features(state: Mapping[str, torch.Tensor]) -> nn.Sequential:
    """torchvision's VGG16 ``features`` (cfg "D") loaded from ``{"0.weight": ...}`` tensors."""
    feats = torchvision.models.vgg.make_layers(torchvision.models.vgg.cfgs["D"])
    feats.load_state_dict(dict(state))
    return feats


class ArticleVGGPerceptualLoss(nn.Module):
    """The article's class: ``forward(input, target, feature_layers, style_layers) -> loss``."""

    def __init__(
        self,
        path: str | Path | None = None,
        *,
        features_state: Mapping[str, torch.Tensor] | None = None,
        resize: bool = True,
    ) -> None:
        super().__init__()
        if path is not None:  # the article: a full torchvision VGG16 state dict by path
            vgg = torchvision.models.vgg16()
            vgg.load_state_dict(torch.load(path, weights_only=True))
            features = vgg.features
        elif features_state is not None:
            features = torchvision_features(features_state)
        else:
            raise ValueError("give a state dict path or features_state")
        features.eval()
        blocks = [features[:4], features[4:9], features[9:16], features[16:23]]
        for block in blocks:
            for p in block.parameters():
                p.requires_grad = False
        self.blocks = nn.ModuleList(blocks)
        self.resize = resize
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

    def forward(
        self,
        input: torch.Tensor,
        target: torch.Tensor,
        feature_layers: Sequence[int] = (0, 1, 2, 3),
        style_layers: Sequence[int] = (),
    ) -> torch.Tensor:
        if input.shape[1] != 3:
            input = input.repeat(1, 3, 1, 1)
            target = target.repeat(1, 3, 1, 1)
        input = (input - self.mean) / self.std
        target = (target - self.mean) / self.std
        if self.resize:
            input = F.interpolate(input, mode="bilinear", size=(224, 224), align_corners=False)
            target = F.interpolate(target, mode="bilinear", size=(224, 224), align_corners=False)
        loss = input.new_zeros(())
        x, y = input, target
        for i, block in enumerate(self.blocks):
            x = block(x)
            y = block(y)
            if i in feature_layers:
                loss = loss + F.l1_loss(x, y)
            if i in style_layers:
                ax = x.reshape(x.shape[0], x.shape[1], -1)
                ay = y.reshape(y.shape[0], y.shape[1], -1)
                loss = loss + F.l1_loss(ax @ ax.permute(0, 2, 1), ay @ ay.permute(0, 2, 1))
        return loss
