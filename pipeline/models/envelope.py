"""Training envelope: the acquisition range a model was trained on, and the review guardrail.

A checkpoint records where its training data came from in ``extra["training_envelope"]``::

    {"pixel_spacing_mm": [lo, hi], "slice_thickness_mm": [lo, hi] or null,
     "dose_fraction": [lo, hi], "kernels": [..], "matrix": [..], "kvp": [lo, hi] or null,
     "source": "simulated"}

:meth:`TrainingEnvelope.check` compares one input series (:class:`SeriesFacts`, read from its
DICOM header) with it and returns the reasons the series lies outside; :func:`dicom_plausibility`
adds the facts that call for review whatever the model (lossy compression, implausible kVp or
CTDIvol). :func:`review_reasons` is both: an empty list means nothing to review;
:func:`guardrail_notes` lists what could not be checked (no envelope, kVp/CTDIvol absent). A model
applied outside its envelope can still produce a plausible-looking image, which is exactly why a
person must look (DOMAIN.md section 13).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from pipeline.errors import ConfigError

#: Key of the envelope in a checkpoint's ``extra``.
EXTRA_KEY = "training_envelope"
#: Relative slack on range bounds (header rounding: 0.48828125 vs 0.488281).
RANGE_RTOL = 1e-3
#: Plausible tube voltages of clinical CT (kV).
KVP_PLAUSIBLE = (70.0, 150.0)
#: Plausible CTDIvol of a diagnostic/low-dose CT series (mGy); outside: unit error or not CT.
CTDIVOL_PLAUSIBLE_MGY = (0.05, 200.0)
#: Transfer syntaxes that are always lossy (JPEG baseline/extended, JPEG-LS near-lossless).
LOSSY_SYNTAXES = frozenset(
    {"1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51", "1.2.840.10008.1.2.4.81"}
)
#: Transfer syntaxes that may be lossy; then LossyImageCompression (0028,2110) must say which.
MAYBE_LOSSY_SYNTAXES = frozenset(
    {"1.2.840.10008.1.2.4.91", "1.2.840.10008.1.2.4.93", "1.2.840.10008.1.2.4.203"}
)

Range = tuple[float, float]


@dataclass(frozen=True)
class SeriesFacts:
    """What the guardrail needs to know about one input series (None: not recorded)."""

    pixel_spacing_mm: tuple[float, float] | None = None  # (row, column)
    slice_thickness_mm: float | None = None
    matrix: tuple[int, int] | None = None  # (rows, columns)
    kernel: str | None = None
    kvp: float | None = None
    ctdivol_mgy: float | None = None
    dose_fraction: float | None = None
    transfer_syntaxes: tuple[str, ...] = ()
    lossy_image_compression: str | None = None  # "00" / "01" as in (0028,2110)

    @classmethod
    def from_meta(
        cls, meta: dict[str, Any], spacing_mm: tuple[float, float, float] | None = None
    ) -> SeriesFacts:
        """Facts from a :class:`pipeline.io.volume.CTVolume`'s ``meta`` and ``spacing_mm``."""
        ts = meta.get("TransferSyntaxes") or meta.get("TransferSyntaxUID") or ()
        syntaxes = tuple(str(t) for t in ([ts] if isinstance(ts, str) else ts) if t)
        rows, cols = _int(meta.get("Rows")), _int(meta.get("Columns"))
        lossy = meta.get("LossyImageCompression")
        return cls(
            pixel_spacing_mm=(float(spacing_mm[1]), float(spacing_mm[2])) if spacing_mm else None,
            slice_thickness_mm=_float(meta.get("SliceThickness")),
            matrix=(rows, cols) if rows and cols else None,
            kernel=_kernel(meta.get("ConvolutionKernel")),
            kvp=_float(meta.get("KVP")),
            ctdivol_mgy=_float(meta.get("CTDIvol")),
            dose_fraction=_float(meta.get("dose_fraction")),
            transfer_syntaxes=syntaxes,
            lossy_image_compression=str(lossy).strip() if lossy not in (None, "") else None,
        )

    @property
    def lossy(self) -> bool | None:
        """True if lossy-compressed, False if known not to be, None if it cannot be told."""
        if self.lossy_image_compression == "01" or LOSSY_SYNTAXES & set(self.transfer_syntaxes):
            return True
        if MAYBE_LOSSY_SYNTAXES & set(self.transfer_syntaxes):
            return False if self.lossy_image_compression == "00" else None
        return False


@dataclass(frozen=True)
class TrainingEnvelope:
    """The range of acquisitions a model was trained on (closed intervals; None = not limited)."""

    pixel_spacing_mm: Range
    dose_fraction: Range
    slice_thickness_mm: Range | None = None
    kernels: tuple[str, ...] = ()
    matrix: tuple[int, ...] = ()
    kvp: Range | None = None
    source: str = "simulated"
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        for name in ("pixel_spacing_mm", "dose_fraction", "slice_thickness_mm", "kvp"):
            r = getattr(self, name)
            if r is None:
                continue
            if len(r) != 2 or not all(math.isfinite(v) for v in r) or r[0] > r[1] or r[0] < 0:
                raise ConfigError(
                    f"training envelope {name}: expected [lo, hi] with 0 <= lo <= hi, found {r}"
                )

    @classmethod
    def from_dict(cls, d: Any) -> TrainingEnvelope:
        """Parse the checkpoint form; ConfigError naming the key on anything malformed."""
        if not isinstance(d, dict):
            raise ConfigError(f"training envelope must be a mapping, found {type(d).__name__}")
        known = {
            "pixel_spacing_mm", "slice_thickness_mm", "dose_fraction", "kernels", "matrix",
            "kvp", "source",
        }  # fmt: skip
        for req in ("pixel_spacing_mm", "dose_fraction"):
            if d.get(req) is None:
                raise ConfigError(f"training envelope: {req!r} is required (found {d.get(req)})")
        try:
            return cls(
                pixel_spacing_mm=_range(d["pixel_spacing_mm"], "pixel_spacing_mm"),
                dose_fraction=_range(d["dose_fraction"], "dose_fraction"),
                slice_thickness_mm=_opt_range(d.get("slice_thickness_mm"), "slice_thickness_mm"),
                kernels=tuple(str(k) for k in d.get("kernels") or ()),
                matrix=tuple(int(m) for m in d.get("matrix") or ()),
                kvp=_opt_range(d.get("kvp"), "kvp"),
                source=str(d.get("source", "simulated")),
                extra={k: v for k, v in d.items() if k not in known},
            )
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"training envelope: {exc}") from exc

    def to_dict(self) -> dict[str, Any]:
        """The JSON-compatible checkpoint form (round-trips through :meth:`from_dict`)."""
        return {
            "pixel_spacing_mm": list(self.pixel_spacing_mm),
            "slice_thickness_mm": list(self.slice_thickness_mm)
            if self.slice_thickness_mm
            else None,
            "dose_fraction": list(self.dose_fraction),
            "kernels": list(self.kernels),
            "matrix": list(self.matrix),
            "kvp": list(self.kvp) if self.kvp else None,
            "source": self.source,
            **self.extra,
        }

    def describe(self) -> str:
        """One line for reports: the envelope in words."""
        parts = [
            f"pixel {_fmt(self.pixel_spacing_mm)} mm",
            f"slice {_fmt(self.slice_thickness_mm)} mm" if self.slice_thickness_mm else "",
            f"dose fraction {_fmt(self.dose_fraction)}",
            f"kernels {', '.join(self.kernels)}" if self.kernels else "",
            f"matrix {', '.join(map(str, self.matrix))}" if self.matrix else "",
            f"kVp {_fmt(self.kvp)}" if self.kvp else "",
            f"source {self.source}",
        ]
        return "; ".join(p for p in parts if p)

    def check(self, facts: SeriesFacts) -> list[str]:
        """Reasons ``facts`` lie outside this envelope (unrecorded facts are not reasons)."""
        out: list[str] = []
        if facts.pixel_spacing_mm is not None:
            for axis, v in zip(("row", "column"), facts.pixel_spacing_mm, strict=True):
                if not _inside(v, self.pixel_spacing_mm):
                    out.append(
                        f"pixel spacing ({axis}) {v:.4g} mm outside the training envelope "
                        f"{_fmt(self.pixel_spacing_mm)} mm"
                    )
                    break
        st = facts.slice_thickness_mm
        if self.slice_thickness_mm and st is not None and not _inside(st, self.slice_thickness_mm):
            out.append(
                f"slice thickness {st:.4g} mm outside the training envelope "
                f"{_fmt(self.slice_thickness_mm)} mm"
            )
        if facts.dose_fraction is not None and not _inside(facts.dose_fraction, self.dose_fraction):
            out.append(
                f"dose fraction {facts.dose_fraction:.3g} outside the training envelope "
                f"{_fmt(self.dose_fraction)}"
            )
        known = {k.lower() for k in self.kernels}
        if known and facts.kernel is not None and facts.kernel.lower() not in known:
            out.append(
                f"reconstruction kernel {facts.kernel!r} not among the training kernels "
                f"({', '.join(self.kernels)})"
            )
        m = facts.matrix
        if self.matrix and m is not None and any(v not in self.matrix for v in m):
            out.append(
                f"matrix {m[0]}x{m[1]} not among the training matrices "
                f"({', '.join(map(str, self.matrix))})"
            )
        if self.kvp and facts.kvp is not None and not _inside(facts.kvp, self.kvp):
            out.append(f"kVp {facts.kvp:g} outside the training envelope {_fmt(self.kvp)} kV")
        return out


def dicom_plausibility(facts: SeriesFacts) -> list[str]:
    """Review reasons from the DICOM facts alone: lossy input, absent/implausible kVp, CTDIvol."""
    out: list[str] = []
    lossy = facts.lossy
    if lossy:
        out.append(
            "lossy-compressed input (LossyImageCompression 01 or a lossy transfer syntax): "
            "compression artifacts are not noise the model was trained on"
        )
    elif lossy is None:
        out.append(
            "transfer syntax may be lossy (JPEG 2000 / HTJ2K) and LossyImageCompression is absent"
        )
    if facts.kvp is not None and not _inside(facts.kvp, KVP_PLAUSIBLE):
        out.append(f"kVp {facts.kvp:g} outside the plausible CT range {_fmt(KVP_PLAUSIBLE)} kV")
    if facts.ctdivol_mgy is not None and not _inside(facts.ctdivol_mgy, CTDIVOL_PLAUSIBLE_MGY):
        out.append(
            f"CTDIvol {facts.ctdivol_mgy:g} mGy outside the plausible range "
            f"{_fmt(CTDIVOL_PLAUSIBLE_MGY)} mGy"
        )
    return out


def review_reasons(envelope: TrainingEnvelope | None, facts: SeriesFacts) -> list[str]:
    """Every reason to review one series: outside the envelope, then DICOM plausibility."""
    out = [] if envelope is None else envelope.check(facts)
    return out + dicom_plausibility(facts)


def guardrail_notes(
    envelope: TrainingEnvelope | None, facts: SeriesFacts, *, learned: bool = True
) -> list[str]:
    """What could not be checked (shown, but no reason to review on its own)."""
    out = []
    if learned and envelope is None:
        out.append("model records no training envelope: applicability not checked")
    if facts.kvp is None:
        out.append("kVp (0018,0060) not recorded")
    if facts.ctdivol_mgy is None:
        out.append("CTDIvol (0018,9345) not recorded")
    return out


def envelope_from_extra(extra: dict[str, Any] | None) -> TrainingEnvelope | None:
    """The envelope stored in a checkpoint's ``extra`` (None when the checkpoint has none)."""
    if not extra or extra.get(EXTRA_KEY) is None:
        return None
    return TrainingEnvelope.from_dict(extra[EXTRA_KEY])


def _inside(v: float, r: Range) -> bool:
    lo, hi = r
    return lo * (1 - RANGE_RTOL) <= v <= hi * (1 + RANGE_RTOL)


def _range(v: Any, name: str) -> Range:
    if not isinstance(v, (list, tuple)) or len(v) != 2:
        raise ConfigError(f"training envelope {name}: expected [lo, hi], found {v!r}")
    return (float(v[0]), float(v[1]))


def _opt_range(v: Any, name: str) -> Range | None:
    return None if v is None else _range(v, name)


def _fmt(r: Range | None) -> str:
    return "-" if r is None else f"[{r[0]:g}, {r[1]:g}]"


def _float(v: Any) -> float | None:
    if isinstance(v, (list, tuple)):
        v = v[0] if v else None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _int(v: Any) -> int | None:
    f = _float(v)
    return int(f) if f is not None else None


def _kernel(v: Any) -> str | None:
    if v is None:
        return None
    if isinstance(v, (list, tuple)):
        v = "\\".join(str(x) for x in v)
    s = str(v).strip()
    return s or None
