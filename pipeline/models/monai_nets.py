"""MONAI-backbone denoisers with the Sobel edge layer in front.

``EdgeUNet`` wraps :class:`monai.networks.nets.BasicUNet` (2-D, four 2x poolings): the input and
its four Sobel maps go in, a correction comes out and is added to the input (residual, final conv
zero-initialised so the untrained net is the identity). Inputs of any size are reflect-padded to a
multiple of 16 and cropped back exactly.

Upsampling: ``"nontrainable"`` (bilinear interpolation, then convs; the default) or
``"pixelshuffle"`` are free of the checkerboard pattern of strided transposed convolutions.
``"deconv"`` (stride-2 transposed conv) is offered only through the deliberately artifact-prone
registry entry ``unet-deconv``, which the evaluation tests use to exercise the grid-artifact
detector. BatchNorm (not MONAI's default InstanceNorm) keeps statistics identical between
training patches and whole-slice inference.

Noise-normalised input (``noise_norm=True``, the shipped ``unet-nn``): each image's noise SD
``s`` is estimated from the image itself (:func:`estimate_noise_sd`: median absolute Haar
diagonal detail, the wavelet estimator of Donoho & Johnstone), and the network sees the image in
units of its own noise: a local high-pass ``(x - mean5x5(x)) / s`` and the four Sobel maps of
``x / s``, both soft-compressed by ``a * asinh(v / a)`` (linear for noise, logarithmic for strong
edges, so BatchNorm statistics are set by noise, not by air/bone contrast), plus the intensity
``(x - water) * 4`` for tissue context. The correction is returned in the same units:
``x + s * f(...)``. One network thus serves every dose, kernel and pixel size without a user
parameter (blind), and its output scales with the noise it finds (Mohan et al. 2020 show that
noise-scale equivariance is what lets a denoiser generalise across noise levels).

Low-cut correction (``lowcut_sigma > 0``, the shipped model): the correction loses its Gaussian
low-pass, ``f - G_sigma * f`` (:func:`gaussian_lowpass`), so the network cannot shift mean HU or
add shading at scales beyond a few ``sigma``; only noise-sized structure is changed. Measured on
the validation set: the unguarded ``unet-nn-s`` shifted the mean HU of a 6 %-dose slice by
-4.4 HU and *added* error below 0.03 cycles/pixel (1.0 -> 9.6 HU^2), where the quarter-dose input
and BM3D carry almost none (docs/model-card.md).

Classical prior (``nlm_prior=True``, the shipped model): the image's non-local means (scikit-image
``denoise_nl_means`` with the blind sigma, exactly ``ldct denoise --model nlm``) is computed from
the input, and its correction in noise units, ``(nlm - x) / s``, enters the network three ways,
each zero at the start so that a trained model keeps its function: a 3x3 conv into the first
encoder level, one into the head, and a learned gain straight onto the correction. The network
thus learns where to keep NLM's result and where to correct it. Measured on validation: a fixed
50/50 mean of the network and NLM already beat both (+4.80 vs +4.11 / +4.55 dB); trained, the
fused model gained +4.56 (docs/model-card.md). The prior of a training patch or an inference
tile is cut from the prior of its whole slice (the sigma estimate needs the whole slice):
:meth:`EdgeUNet.attach_prior` returns ``(B, 2, H, W)``, which ``forward`` accepts as image +
prior.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pipeline.errors import ConfigError
from pipeline.intensity import hu_to_model, model_to_hu
from pipeline.models.sobel import SobelEdges
from pipeline.utils.shapes import check_shape

UPSAMPLE_MODES = ("nontrainable", "pixelshuffle", "deconv")
_DIVISOR = 16  # BasicUNet pools four times
_MAD_TO_SD = 0.6745  # median(|N(0, 1)|)
_SD_FLOOR = 1e-5  # model units (0.04 HU): a noise-free input keeps a finite scale
_WATER = float(hu_to_model(np.zeros(())))  # 0 HU in the model range [0, 1]


def estimate_noise_sd(x: torch.Tensor) -> torch.Tensor:
    """Per-image noise SD of (B, 1, H, W) from the finest Haar diagonal detail: (B, 1, 1, 1).

    ``median(|d|) / 0.6745`` with ``d = (a - b - c + e) / 2`` over 2x2 blocks: exact for white
    Gaussian noise, robust to edges (a minority of blocks). Blocks with ``d == 0`` exactly
    (constant padding outside a scan's field of view) are left out. For correlated CT noise it
    measures the finest-scale component, consistently per kernel; the network learns the rest.

    >>> g = torch.Generator().manual_seed(0)
    >>> x = 0.5 + 0.01 * torch.randn(1, 1, 256, 256, generator=g)
    >>> round(float(estimate_noise_sd(x)), 3)
    0.01
    """
    h, w = (x.shape[-2] // 2) * 2, (x.shape[-1] // 2) * 2
    v = x[..., :h, :w].float()
    d = (v[..., 0::2, 0::2] - v[..., 1::2, 0::2] - v[..., 0::2, 1::2] + v[..., 1::2, 1::2]) / 2
    a = d.abs().flatten(1)
    a = torch.where(a > 0, a, torch.full_like(a, float("nan")))
    med = torch.nanmedian(a, dim=1).values
    sd = torch.nan_to_num(med / _MAD_TO_SD, nan=_SD_FLOOR).clamp_min(_SD_FLOOR)
    return sd.view(-1, 1, 1, 1).to(x.dtype)


def nlm_prior_hu(hu: np.ndarray) -> np.ndarray:
    """The NLM prior of one ``(H, W)`` HU slice: ``ldct denoise --model nlm`` (blind sigma)."""
    from pipeline.models.classical import ClassicalConfig, estimate_noise_sd_hu, nlm_slice

    return nlm_slice(hu, estimate_noise_sd_hu(hu), ClassicalConfig())


def gaussian_lowpass(x: torch.Tensor, sigma: float, truncate: float = 3.0) -> torch.Tensor:
    """Separable Gaussian blur of (B, C, H, W), whole-sample mirror at the borders.

    The same filter as ``scipy.ndimage.gaussian_filter(x, sigma, mode="mirror",
    truncate=truncate)`` (radius ``int(truncate * sigma + 0.5)``); borders narrower than the
    radius fall back to edge replication (``torchvision``'s ``gaussian_blur`` computes the same
    in mirror mode but refuses an image narrower than the radius, e.g. a small tile).

    >>> x = torch.ones(1, 1, 8, 8)
    >>> bool(torch.allclose(gaussian_lowpass(x, 2.0), x))
    True
    """
    r = int(truncate * sigma + 0.5)
    if r < 1:
        return x
    t = torch.arange(-r, r + 1, dtype=torch.float64, device=x.device)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = (k / k.sum()).to(x.dtype)
    c = x.shape[1]
    kx = k.view(1, 1, 1, -1).expand(c, 1, 1, -1)
    ky = k.view(1, 1, -1, 1).expand(c, 1, -1, 1)
    h, w = x.shape[-2:]
    mode = "reflect" if r < h and r < w else "replicate"
    y = F.conv2d(F.pad(x, (r, r, 0, 0), mode=mode), kx, groups=c)
    return F.conv2d(F.pad(y, (0, 0, r, r), mode=mode), ky, groups=c)


def _soft(v: torch.Tensor, a: float) -> torch.Tensor:
    return a * torch.asinh(v / a)


_FLIPS: tuple[tuple[int, ...], ...] = ((), (-1,), (-2,), (-2, -1))


def _flip_mean(f: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, n: int) -> torch.Tensor:
    """Mean of ``flip^-1(f(flip(x)))`` over the first ``n`` flips of the last two axes."""
    total = f(x)
    for dims in _FLIPS[1:n]:
        total = total + f(x.flip(dims)).flip(dims)
    return total / n


def pad_to_multiple(x: torch.Tensor, k: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Pad (B,C,H,W) at bottom/right to multiples of ``k`` (reflect, replicate when too small)."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % k, (-w) % k
    if ph == 0 and pw == 0:
        return x, (h, w)
    mode = "reflect" if ph < h and pw < w else "replicate"
    return F.pad(x, (0, pw, 0, ph), mode=mode), (h, w)


def _zero_init(modules: Iterable[nn.Module]) -> None:
    """Zero weights and biases: a residual path that starts as a no-op."""
    for m in modules:
        nn.init.zeros_(m.weight)  # type: ignore[arg-type]
        if getattr(m, "bias", None) is not None:
            nn.init.zeros_(m.bias)  # type: ignore[arg-type]


def _check_options(
    *,
    upsample: str,
    features: Sequence[int],
    residual: bool,
    residual_scale: float,
    noise_norm: bool,
    lowcut_sigma: float,
    head_features: int,
    flip_ensemble: int,
    nlm_prior: bool,
) -> None:
    """ConfigError for an EdgeUNet option out of range or without the option it needs."""
    if upsample not in UPSAMPLE_MODES:
        raise ConfigError(f"upsample must be one of {UPSAMPLE_MODES}, found {upsample!r}")
    if len(features) != 6:
        raise ConfigError(f"features needs 6 widths, found {list(features)}")
    if not residual_scale > 0:
        raise ConfigError(f"residual_scale must be > 0, found {residual_scale}")
    if not lowcut_sigma >= 0:
        raise ConfigError(f"lowcut_sigma must be >= 0 pixels, found {lowcut_sigma}")
    if lowcut_sigma > 0 and not residual:
        raise ConfigError("lowcut_sigma needs residual=True (it filters the correction)")
    if flip_ensemble not in (1, 2, 4):
        raise ConfigError(f"flip_ensemble must be 1, 2 or 4, found {flip_ensemble!r}")
    if not head_features >= 0:
        raise ConfigError(f"head_features must be >= 0, found {head_features}")
    if noise_norm and not residual:
        raise ConfigError("noise_norm needs residual=True (the correction is in noise units)")
    if nlm_prior and not noise_norm:
        raise ConfigError("nlm_prior needs noise_norm=True (its correction is in noise units)")


class EdgeUNet(nn.Module):
    """Sobel edge layer + MONAI BasicUNet backbone, residual output, any input size.

    Args:
        features: BasicUNet feature widths (6 numbers: 5 encoder levels + final decoder).
        upsample: ``"nontrainable"``, ``"pixelshuffle"`` or ``"deconv"`` (checkerboard-prone).
        trainable_edges: learnable per-direction Sobel scale.
        residual: return ``x + residual_scale * f(x)`` with a zero-initialised final conv.
        residual_scale: fixed factor on the correction. CT noise is ~0.005 of the model range, so
            with unit scale one Adam step (lr 1e-3) on the final conv moves the output by tens
            of HU and training oscillates; 0.03 puts the correction's step size at ~1 HU.
        noise_norm: feed the image in units of its estimated noise SD and scale the correction
            by it (module docstring); ``residual_scale`` then multiplies the noise-unit output.
        soft_limit: where the noise-unit channels turn from linear to logarithmic (noise SDs).
        head_features: when > 0, a full-resolution refinement head (three 3x3 convs of this
            width, the last zero-initialised) sees the input channels and the backbone's last
            decoder features and adds to its correction: more capacity where the finest noise
            is, at ~0.4 GFLOPs per 512^2 slice per 4 channels. Zero: none.
        lowcut_sigma: when > 0 (pixels), remove the correction's Gaussian low-pass of this
            sigma (module docstring): mean HU and shading beyond a few sigma are left as they
            came in. Needs ``residual=True``.
        flip_ensemble: in eval mode, the number of flips of the input (1: none; 2: identity and
            left-right; 4: also up-down and both) whose outputs, each un-flipped, are averaged:
            the geometric self-ensemble of Timofte et al. 2016 / Lim et al. 2017. Run one after
            the other (n x the FLOPs and time, the memory of one forward). Training
            (``model.train()``) runs the plain forward.
        nlm_prior: with ``noise_norm``, a classical prior channel: the image's non-local means
            (:func:`nlm_prior_hu`, exactly ``ldct denoise --model nlm``) is computed from the input
            and its correction ``(nlm - x) / s`` enters the first encoder level and the head
            through zero-initialised 3x3 convs and the output through a learned gain (zero at
            the start), so the network learns what to keep of NLM's result (module docstring).
            The input may carry the prior as a second channel (``(B, 2, H, W)``, from
            :meth:`attach_prior`): training computes it once per whole slice, tiled inference
            once per slice before tiling, so patches and tiles see the whole slice's prior.
    """

    def __init__(
        self,
        features: Sequence[int] = (16, 32, 64, 128, 256, 16),
        upsample: str = "nontrainable",
        trainable_edges: bool = False,
        residual: bool = True,
        residual_scale: float = 1.0,
        noise_norm: bool = False,
        soft_limit: float = 5.0,
        lowcut_sigma: float = 0.0,
        head_features: int = 0,
        flip_ensemble: int = 1,
        nlm_prior: bool = False,
    ) -> None:
        from monai.networks.nets import BasicUNet  # lazy: importing MONAI takes seconds

        super().__init__()
        _check_options(
            upsample=upsample,
            features=features,
            residual=residual,
            residual_scale=residual_scale,
            noise_norm=noise_norm,
            lowcut_sigma=lowcut_sigma,
            head_features=head_features,
            flip_ensemble=flip_ensemble,
            nlm_prior=nlm_prior,
        )
        self.upsample = upsample
        self.residual = residual
        self.residual_scale = float(residual_scale)
        self.noise_norm = bool(noise_norm)
        self.soft_limit = float(soft_limit)
        self.lowcut_sigma = float(lowcut_sigma)
        self.flip_ensemble = int(flip_ensemble)
        self.nlm_prior = bool(nlm_prior)
        self.edges = SobelEdges(trainable=trainable_edges, concat_input=True)
        n_in = 6 if self.noise_norm else 5  # noise_features(), or the input + 4 Sobel maps
        self.unet = BasicUNet(
            spatial_dims=2,
            in_channels=n_in,
            out_channels=1,
            features=tuple(features),
            act=("LeakyReLU", {"negative_slope": 0.1, "inplace": True}),
            norm=("batch", {"affine": True}),
            upsample=upsample,
        )
        self.head: nn.Sequential | None = None
        if head_features:
            act = nn.LeakyReLU(0.1, inplace=True)
            self.head = nn.Sequential(  # sees the backbone's input and its last features
                nn.Conv2d(n_in + int(features[-1]), head_features, 3, padding=1),
                act,
                nn.Conv2d(head_features, head_features, 3, padding=1),
                act,
                nn.Conv2d(head_features, 1, 3, padding=1),
            )
        self.prior_in: nn.ModuleDict | None = None
        if self.nlm_prior:  # NLM correction -> zero-initialised paths (module docstring)
            widths = {"enc0": int(features[0])} | ({"head": head_features} if head_features else {})
            self.prior_in = nn.ModuleDict(
                {k: nn.Conv2d(1, c, 3, padding=1) for k, c in widths.items()}
            )
            _zero_init(self.prior_in.values())
            self.prior_gain = nn.Parameter(torch.zeros(1))
        if residual:
            _zero_init([self.unet.final_conv] + ([self.head[-1]] if self.head is not None else []))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, H, W) -> (B, 1, H, W); with ``nlm_prior`` also (B, 2, H, W): image + its prior."""
        if not (self.nlm_prior and x.ndim == 4 and x.shape[1] == 2):  # else: prior attached
            check_shape("unet input", x, ("B", 1, "H", "W"))
            if self.nlm_prior:
                x = self.attach_prior(x)
        if self.flip_ensemble > 1 and not self.training:
            return _flip_mean(self._forward_once, x, self.flip_ensemble)
        return self._forward_once(x)

    @property
    def training_prior(self) -> Callable[[np.ndarray], np.ndarray] | None:
        """HU slice -> its prior, for the training data (:func:`nlm_prior_hu`); None: no prior."""
        return nlm_prior_hu if self.nlm_prior else None

    def attach_prior(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, H, W) whole slices -> what ``forward`` takes: with ``nlm_prior`` (B, 2, H, W),
        the image and its NLM prior (no gradient); without, ``x`` itself."""
        check_shape("unet input", x, ("B", 1, "H", "W"))
        if not self.nlm_prior:
            return x
        if x.is_meta:  # FLOP counting: the prior is numerical work outside the network
            return torch.cat([x, x], dim=1)
        hu = model_to_hu(x.detach()[:, 0].to("cpu", torch.float64)).numpy()
        prior = np.stack([nlm_prior_hu(img) for img in hu])
        p = hu_to_model(torch.from_numpy(prior)[:, None]).to(x.device, x.dtype)
        return torch.cat([x, p], dim=1)

    def _forward_once(self, x: torch.Tensor) -> torch.Tensor:
        xp, (h, w) = pad_to_multiple(x, _DIVISOR)
        if self.noise_norm:  # xp keeps the prior channel, if any
            return self._forward_noise_norm(x[:, :1], xp, h, w)
        y = self._backbone(self.edges(xp))[..., :h, :w]
        return x + self.residual_scale * self._lowcut(y) if self.residual else y

    def _backbone(self, z: torch.Tensor, prior: torch.Tensor | None = None) -> torch.Tensor:
        """BasicUNet (+ head) on ``z``; ``prior`` (B, 1, H, W): nlm_prior's soft NLM correction."""
        if self.head is None and prior is None:
            return self.unet(z)
        u = self.unet  # BasicUNet.forward, keeping the last decoder features for the head
        x0 = self._add_prior(u.conv_0(z), "enc0", prior)
        x1 = u.down_1(x0)
        x2 = u.down_2(x1)
        x3 = u.down_3(x2)
        u1 = u.upcat_1(u.upcat_2(u.upcat_3(u.upcat_4(u.down_4(x3), x3), x2), x1), x0)
        y = u.final_conv(u1)
        if self.head is None:
            return y
        h = self._add_prior(self.head[0](torch.cat([z, u1], dim=1)), "head", prior)
        return y + self.head[1:](h)

    def _add_prior(self, v: torch.Tensor, where: str, prior: torch.Tensor | None) -> torch.Tensor:
        """``v`` plus the prior's features meant for ``where`` (a zero-initialised conv)."""
        if self.prior_in is None or prior is None:
            return v
        return v + self.prior_in[where](prior)

    def _lowcut(self, y: torch.Tensor) -> torch.Tensor:
        return y - gaussian_lowpass(y, self.lowcut_sigma) if self.lowcut_sigma > 0 else y

    def noise_features(self, xp: torch.Tensor, sd: torch.Tensor) -> torch.Tensor:
        """The six input channels of the noise-normalised network (module docstring)."""
        z = xp / sd
        local = F.avg_pool2d(F.pad(z, (2, 2, 2, 2), mode="replicate"), 5, stride=1)
        e = self.edges(z)  # [z, 4 Sobel maps of z]
        a = self.soft_limit
        return torch.cat([_soft(z - local, a), (xp - _WATER) * 4.0, _soft(e[:, 1:], a)], dim=1)

    def _forward_noise_norm(
        self, x: torch.Tensor, xp: torch.Tensor, h: int, w: int
    ) -> torch.Tensor:
        xp, pp = xp[:, :1], xp[:, 1:]
        sd = estimate_noise_sd(x).detach()
        prior = soft = None
        if self.prior_in is not None:
            prior = (pp - xp) / sd  # NLM's correction in noise units
            soft = _soft(prior, self.soft_limit)
        y = self._backbone(self.noise_features(xp, sd), soft)
        if prior is not None:
            y = y + self.prior_gain.to(y.dtype) * prior
        y = y[..., :h, :w]
        return x + (self.residual_scale * sd) * self._lowcut(y)
