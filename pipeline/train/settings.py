"""Typed settings of the training loop itself (optimizer, schedule, validation, checkpoints...).

These sections do not depend on the data, model or loss packages, so the loop can be built and
tested with small throwaway modules. :class:`pipeline.train.config.TrainConfig` extends
:class:`LoopConfig` with the ``data``, ``model`` and ``loss`` sections.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path

from pydantic import Field, model_validator

from pipeline.config import StrictModel


class Precision(str, Enum):
    """Arithmetic of the denoiser's forward/backward (the VGG loss path always stays fp32)."""

    AUTO = "auto"
    FP32 = "fp32"
    BF16 = "bf16"


class NonFinitePolicy(str, Enum):
    """What a NaN/inf in the loss or the gradients does: stop the run, or skip that batch."""

    STOP = "stop"
    SKIP = "skip"


class ValMetric(str, Enum):
    """Validation metric that selects the best checkpoint (psnr/ssim: higher is better)."""

    PSNR = "psnr"
    SSIM = "ssim"
    LOSS = "loss"


class ScheduleKind(str, Enum):
    """Learning-rate schedules, indexed by optimizer step."""

    CONSTANT = "constant"
    MULTISTEP = "multistep"
    COSINE = "cosine"


class OptimConfig(StrictModel):
    """Adam(W). The reference method used lr 1e-3 then 1e-4 with beta1 0.5."""

    name: str = Field("adam", pattern="^(adam|adamw)$")
    lr: float = Field(1e-3, gt=0)
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = Field(1e-8, gt=0)
    weight_decay: float = Field(0.0, ge=0)


class ScheduleConfig(StrictModel):
    """Learning rate as a function of the optimizer step.

    ``multistep`` multiplies the rate by ``gamma`` at each step in ``milestones`` (the reference
    "1e-3 then 1e-4" is ``milestones: [N], gamma: 0.1``); ``cosine`` decays to
    ``min_lr_factor`` x lr.
    ``warmup_steps`` ramps linearly from 0 in front of any schedule.
    """

    kind: ScheduleKind = ScheduleKind.CONSTANT
    milestones: list[int] = Field(default_factory=list)
    gamma: float = Field(0.1, gt=0)
    min_lr_factor: float = Field(0.0, ge=0, le=1)
    warmup_steps: int = Field(0, ge=0)


class ValidationConfig(StrictModel):
    """Whole-slice validation every ``every_steps`` steps (0: only at the end).

    Metrics come from :mod:`pipeline.evaluate.metrics`, computed on the model output mapped to
    the HU ``window`` (clipped, [0, 1], data_range 1), or on the full model range when
    ``window`` is ``null``.
    """

    every_steps: int = Field(100, ge=0)
    metric: ValMetric = ValMetric.PSNR
    window: str | None = "soft_tissue"
    ssim_kernel: str = Field("gaussian", pattern="^(gaussian|uniform)$")
    max_slices: int | None = Field(None, gt=0)


class EarlyStopConfig(StrictModel):
    """Stop after ``patience`` validations without an improvement larger than ``min_delta``."""

    enabled: bool = False
    patience: int = Field(5, gt=0)
    min_delta: float = Field(0.0, ge=0)


class EMAConfig(StrictModel):
    """Exponential moving average of the weights; when enabled, validation and export use it."""

    enabled: bool = False
    decay: float = Field(0.999, gt=0, lt=1)
    start_step: int = Field(0, ge=0)


class CheckpointConfig(StrictModel):
    """Resume state written every ``every_steps`` steps (and at the end), atomically."""

    every_steps: int = Field(100, gt=0)


class LogConfig(StrictModel):
    """Metrics log (CSV + JSON lines) every ``every_steps`` steps; TensorBoard optional."""

    every_steps: int = Field(10, gt=0)
    tensorboard: bool = True


class LoopConfig(StrictModel):
    """Everything the training loop needs apart from data, model and loss.

    Batch size, patch size and loader workers live in the ``data`` section (one home each);
    ``data.batch_size`` is the global batch, split evenly over ``torchrun`` processes.
    """

    output_dir: Path = Path("runs/train")
    steps: int = Field(1000, gt=0, description="total optimizer steps (batches)")
    seed: int = 0
    device: str = Field("auto", pattern="^(auto|cpu|cuda)$")
    threads: int | None = Field(None, gt=0, description="torch intra-op threads (CPU)")
    precision: Precision = Precision.FP32  # bf16 is opt-in: see docs/training.md
    channels_last: bool = True
    grad_clip: float | None = Field(1.0, gt=0, description="max global grad norm; null: off")
    nonfinite: NonFinitePolicy = NonFinitePolicy.STOP
    max_skipped: int = Field(20, gt=0, description="skip policy: stop after this many skips")
    sync_batchnorm: bool = Field(True, description="SyncBatchNorm under DDP on GPU")
    optim: OptimConfig = Field(default_factory=OptimConfig)  # type: ignore[arg-type]
    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig)  # type: ignore[arg-type]
    validation: ValidationConfig = Field(default_factory=ValidationConfig)  # type: ignore[arg-type]
    early_stop: EarlyStopConfig = Field(default_factory=EarlyStopConfig)  # type: ignore[arg-type]
    ema: EMAConfig = Field(default_factory=EMAConfig)  # type: ignore[arg-type]
    checkpoint: CheckpointConfig = Field(default_factory=CheckpointConfig)  # type: ignore[arg-type]
    log: LogConfig = Field(default_factory=LogConfig)  # type: ignore[arg-type]

    @model_validator(mode="after")
    def _check_schedule(self) -> LoopConfig:
        ms = self.schedule.milestones
        if any(m <= 0 for m in ms) or ms != sorted(ms):
            raise ValueError(f"schedule.milestones must be positive and increasing, got {ms}")
        return self
