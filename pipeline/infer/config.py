"""Typed configuration of ``ldct denoise`` (defaults < ``configs/denoise.yaml`` < flags/--set)."""

from __future__ import annotations

import os
import re
from enum import Enum

from pydantic import Field, field_validator, model_validator

from pipeline.config import StrictModel
from pipeline.errors import ConfigError
from pipeline.io.dicom_encode import OutputSyntax
from pipeline.models.classical import ClassicalConfig


class OutputFormat(str, Enum):
    """What each denoised series is written as."""

    DICOM = "dicom"
    NIFTI = "nifti"
    BOTH = "both"

    @property
    def dicom(self) -> bool:
        return self in (OutputFormat.DICOM, OutputFormat.BOTH)

    @property
    def nifti(self) -> bool:
        return self in (OutputFormat.NIFTI, OutputFormat.BOTH)


class SelectionRules(StrictModel):
    """Which discovered series are denoised; shown by ``--dry-run``, overridable with ``--set``.

    Localizers, non-image objects and non-CT files are already dropped by discovery; these rules
    decide among the CT image series that remain.
    """

    #: Modalities accepted (upper-case DICOM Modality values).
    modalities: list[str] = Field(default_factory=lambda: ["CT"])
    #: Series with fewer slices are skipped (1 keeps single-slice series).
    min_slices: int = Field(default=1, ge=1)
    #: Slices smaller than this (rows or columns) are skipped (thumbnails, odd secondary images).
    min_matrix: int = Field(default=16, ge=1)
    #: If not empty, SeriesDescription must match one of these regexes (search, any case).
    include_descriptions: list[str] = Field(default_factory=list)
    #: SeriesDescription matching any of these (search, any case) is skipped.
    exclude_descriptions: list[str] = Field(
        default_factory=lambda: ["localizer", "scout", "topogram", "surview", "dose report"]
    )
    #: Skip series this tool derived itself (DerivationDescription "Denoised by ldct-pipeline").
    skip_own_outputs: bool = True
    #: Skip every derived series (ImageType DERIVED), e.g. reformats and other tools' outputs.
    skip_derived: bool = False

    @field_validator("include_descriptions", "exclude_descriptions")
    @classmethod
    def _valid_regex(cls, patterns: list[str]) -> list[str]:
        for p in patterns:
            try:
                re.compile(p)
            except re.error as exc:
                raise ValueError(f"invalid regular expression {p!r}: {exc}") from exc
        return patterns

    @field_validator("modalities")
    @classmethod
    def _upper(cls, values: list[str]) -> list[str]:
        return [v.strip().upper() for v in values]


class TilingConfig(StrictModel):
    """When and how slices are split into overlapping tiles (only when memory requires it)."""

    #: Memory the model's activations may use per forward pass (MiB); decides batch and tiling.
    memory_budget_mb: int = Field(default=512, ge=16)
    #: Force tiles of at most this many pixels per side (0: decided from the memory budget).
    max_tile: int = Field(default=0, ge=0)
    #: Fraction of a tile shared with its neighbour (Gaussian-blended).
    overlap: float = Field(default=0.25, ge=0.0, lt=1.0)


class OutputConfig(StrictModel):
    """How derived DICOM files are encoded."""

    #: uncompressed (Explicit VR Little Endian) | rle | jpeg-ls | jpeg2000 (all lossless; each
    #: file is checked to decode bit-exactly to the uncompressed pixels)
    transfer_syntax: OutputSyntax = OutputSyntax.UNCOMPRESSED
    #: de-identify the derived series (PS3.15 Basic Profile by allowlist, pipeline.io.deid);
    #: needs the pseudonymisation key in LDCT_PSEUDONYM_KEY (the QA report's --key)
    deidentify: bool = False


class DenoiseConfig(StrictModel):
    """Everything ``ldct denoise`` needs besides the input and output paths."""

    #: Checkpoint path, or ``bm3d`` / ``nlm`` (non-learned baselines); None uses the bundled
    #: demo model (and the CLI says so).
    model: str | None = None
    #: ``auto`` picks bf16 only where the CPU/GPU runs it fast (see pipeline.models.precision).
    precision: str = "auto"
    #: ``auto`` = CUDA if available, else CPU.
    device: str = "auto"
    #: Slices per forward pass (upper bound; reduced when the memory budget requires it).
    batch_size: int = Field(default=8, ge=1)
    tiling: TilingConfig = Field(default_factory=lambda: TilingConfig())
    format: OutputFormat = OutputFormat.DICOM
    output: OutputConfig = Field(default_factory=lambda: OutputConfig())
    selection: SelectionRules = Field(default_factory=lambda: SelectionRules())
    #: ``"i/n"``: process only share i (0-based) of n; None = read RANK/WORLD_SIZE or take all.
    shard: str | None = None
    #: Threads decoding slices of one series.
    read_workers: int = Field(default=2, ge=1)
    #: Series read ahead / queued for writing (bounds memory: ~prefetch + 2 volumes in flight).
    prefetch: int = Field(default=1, ge=0, le=4)
    #: Memory for series volumes in flight (MiB, 5 bytes/voxel); a read-ahead waits when the
    #: next series would exceed it (one series always runs, whatever its size).
    volume_budget_mb: int = Field(default=768, ge=1)
    #: Denoise a series even when slices are missing (undecodable files, gaps in z); the
    #: derived series then has the same gaps. Default: such a series fails with the reason.
    allow_incomplete: bool = False
    #: Refuse series whose HU are implausible for CT (non-finite, beyond the physical range, no
    #: tissue, or no air anywhere: docs/dicom-input.md). ``false`` denoises them anyway, e.g. a
    #: tight-FOV reconstruction that contains no air; the checks of the stored values stay on.
    check_plausible_hu: bool = True
    #: Appended to the source SeriesDescription of derived series.
    description_suffix: str = "denoised"
    #: Parameters of ``--model bm3d`` / ``--model nlm`` (ignored for checkpoints).
    classical: ClassicalConfig = Field(default_factory=lambda: ClassicalConfig())

    @field_validator("precision")
    @classmethod
    def _precision(cls, v: str) -> str:
        if v not in ("auto", "fp32", "bf16"):
            raise ValueError(f"precision must be auto, fp32 or bf16, found {v!r}")
        return v

    @field_validator("shard")
    @classmethod
    def _shard(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                parse_shard(v)
            except ConfigError as exc:
                raise ValueError(str(exc)) from exc
        return v

    @model_validator(mode="after")
    def _suffix(self) -> DenoiseConfig:
        if len(self.description_suffix) > 30:
            raise ValueError("description_suffix must be at most 30 characters")
        return self


def parse_shard(text: str) -> tuple[int, int]:
    """``"i/n"`` -> (i, n) with 0 <= i < n."""
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not m:
        raise ConfigError(f"shard {text!r} must look like i/n (e.g. 0/4)")
    i, n = int(m.group(1)), int(m.group(2))
    if n < 1 or not 0 <= i < n:
        raise ConfigError(f"shard {text!r}: need 0 <= i < n, found i={i}, n={n}")
    return i, n


def resolve_shard(shard: str | None) -> tuple[int, int]:
    """This process's (index, count): ``--shard`` wins, then torchrun's RANK/WORLD_SIZE."""
    if shard is not None:
        return parse_shard(shard)
    world = os.environ.get("WORLD_SIZE")
    rank = os.environ.get("RANK")
    if world and rank:
        return parse_shard(f"{rank}/{world}")
    return 0, 1
