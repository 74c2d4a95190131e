"""Headers of derived CT instances: Enhanced CT frames as classic CT, and the derived-image rules.

* :func:`classic_from_frame` -- a classic CT Image header for one frame of an Enhanced
  (multi-frame) CT file: the top-level attributes without the multi-frame-only ones, plus the
  frame's shared and per-frame functional groups flattened into their classic attributes
  (rescale, window, pixel measures, acquisition/exposure/reconstruction details, contrast).
* :func:`apply_derived_rules` -- what every derived instance gets (PS3.3 C.7.5.1, C.12.1,
  C.7.6.1.1.3): new Content/Instance Creation and Series date/time, this software as General
  Equipment with the source equipment kept in ContributingEquipmentSequence, private tags
  dropped, DerivationCodeSequence (CID 7203), PurposeOfReferenceCodeSequence (CID 7202) in
  every SourceImageSequence item, and empty values for the Type 2 attributes a source lacks.
"""

from __future__ import annotations

import copy
import datetime as dt
import re
from dataclasses import dataclass

from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence

from pipeline import __version__

#: (code value, scheme, meaning) of the codes used here (PS3.16 CID 7203, 7202, 7005)
SMOOTHING = ("113087", "DCM", "Smoothing")  # CID 7203 Image Derivation: noise reduction
FRAMES_EXTRACTED = ("113091", "DCM", "Spatially-related frames extracted from the volume")
SOURCE_FOR_PROCESSING = ("121322", "DCM", "Source image for image processing operation")
ACQUISITION_EQUIPMENT = ("109101", "DCM", "Acquisition Equipment")

MANUFACTURER = "ldct-pipeline"

#: top-level attributes of Enhanced CT that have no place in a classic CT Image instance
_MULTIFRAME_ONLY = frozenset(
    {
        "NumberOfFrames",
        "FrameIncrementPointer",
        "SharedFunctionalGroupsSequence",
        "PerFrameFunctionalGroupsSequence",
        "DimensionOrganizationSequence",
        "DimensionIndexSequence",
        "DimensionOrganizationType",
        "PixelPresentation",
        "VolumetricProperties",
        "VolumeBasedCalculationTechnique",
        "ContentQualification",
        "AcquisitionContextSequence",
        "PresentationLUTShape",
        "RedPaletteColorLookupTableDescriptor",
        "GreenPaletteColorLookupTableDescriptor",
        "BluePaletteColorLookupTableDescriptor",
        "RedPaletteColorLookupTableData",
        "GreenPaletteColorLookupTableData",
        "BluePaletteColorLookupTableData",
        "SegmentedRedPaletteColorLookupTableData",
        "SegmentedGreenPaletteColorLookupTableData",
        "SegmentedBluePaletteColorLookupTableData",
        "PaletteColorLookupTableUID",
        "ReferencedRawDataSequence",
        "ReferencedWaveformSequence",
        "ReferencedImageEvidenceSequence",
        "SourceImageEvidenceSequence",
        "ReferencedPresentationStateSequence",
        "ConcatenationUID",
        "InConcatenationNumber",
        "InConcatenationTotalNumber",
        "ConcatenationFrameOffsetNumber",
        "SOPInstanceUIDOfConcatenationSource",
        "RepresentativeFrameNumber",
        "ContrastBolusAgentSequence",  # Enhanced Contrast/Bolus items; rebuilt below
        "ImageType",
        "PixelData",
    }
)
#: classic CT attributes that Enhanced CT keeps inside functional-group items (same keyword)
_SAME_NAME = frozenset(
    {
        "KVP",
        "DataCollectionDiameter",
        "ReconstructionDiameter",
        "DistanceSourceToDetector",
        "GantryDetectorTilt",
        "TableHeight",
        "RotationDirection",
        "RevolutionTime",
        "SingleCollimationWidth",
        "TotalCollimationWidth",
        "TableSpeed",
        "TableFeedPerRotation",
        "SpiralPitchFactor",
        "CTDIvol",
        "FilterType",
        "FocalSpots",
        "ConvolutionKernel",
        "DataCollectionCenterPatient",
        "ReconstructionTargetCenterPatient",
        "WindowCenter",
        "WindowWidth",
        "WindowCenterWidthExplanation",
        "SliceThickness",
        "PixelSpacing",
        "IrradiationEventUID",
        "AnatomicRegionSequence",
    }
)
#: equipment attributes that describe the source scanner (moved to ContributingEquipment)
_SOURCE_EQUIPMENT = (
    "Manufacturer",
    "InstitutionName",
    "InstitutionAddress",
    "StationName",
    "InstitutionalDepartmentName",
    "ManufacturerModelName",
    "DeviceSerialNumber",
    "SoftwareVersions",
    "DeviceUID",
)
_EQUIPMENT_DROP = (
    "InstitutionName",
    "InstitutionAddress",
    "StationName",
    "InstitutionalDepartmentName",
    "DeviceSerialNumber",
    "DeviceUID",
    "GantryID",
    "DateOfLastCalibration",
    "TimeOfLastCalibration",
    "SpatialResolution",
    "InstanceCreatorUID",
)
#: Type 2 (PatientPosition: 2C, required for CT) attributes written empty when the source lacks
#: them (Laterality is left alone: whether it may appear depends on the anatomy)
_TYPE2_EMPTY = ("KVP", "AcquisitionNumber", "PatientPosition", "AccessionNumber")


def code_item(code: tuple[str, str, str]) -> Dataset:
    """A Code Sequence item (CodeValue, CodingSchemeDesignator, CodeMeaning)."""
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = code
    return item


def _first(seq: object) -> Dataset | None:
    try:
        return seq[0] if seq else None  # type: ignore[index]
    except (IndexError, TypeError):
        return None


def _groups(header: Dataset, frame: int) -> list[Dataset]:
    """Shared group first, then the frame's own group (later wins)."""
    out: list[Dataset] = []
    shared = _first(header.get("SharedFunctionalGroupsSequence"))
    if shared is not None:
        out.append(shared)
    per_frame = header.get("PerFrameFunctionalGroupsSequence")
    if per_frame is not None and frame < len(per_frame):
        out.append(per_frame[frame])
    return out


def _int_str(value: object, scale: float = 1.0) -> int | None:
    try:
        return round(float(value) * scale)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def classic_from_frame(header: Dataset, frame: int) -> Dataset:
    """Classic CT Image attributes for frame ``frame`` (0-based) of an Enhanced CT header."""
    ds = Dataset()
    for elem in header:
        if elem.keyword in _MULTIFRAME_ONLY or elem.tag.is_private:
            continue
        ds.add(copy.deepcopy(elem))
    flat: dict[str, object] = {}
    for group in _groups(header, frame):
        for macro in group:
            item = _first(macro.value) if macro.VR == "SQ" else None
            if item is None:
                continue
            for elem in item:
                if elem.keyword in _SAME_NAME:
                    flat[elem.keyword] = copy.deepcopy(elem.value)
                elif elem.keyword == "XRayTubeCurrentInmA":
                    flat["XRayTubeCurrent"] = _int_str(elem.value)
                elif elem.keyword == "ExposureTimeInms":
                    flat["ExposureTime"] = _int_str(elem.value)
                elif elem.keyword == "ExposureInmAs":
                    flat["Exposure"] = _int_str(elem.value)
                    flat["ExposureInuAs"] = _int_str(elem.value, 1000.0)
                elif elem.keyword == "FrameAcquisitionDateTime" and elem.value:
                    flat["AcquisitionDateTime"] = elem.value
                elif elem.keyword == "FrameAcquisitionNumber":
                    flat.setdefault("_FrameAcquisitionNumber", elem.value)
                elif elem.keyword == "FrameLaterality" and str(elem.value) in ("R", "L"):
                    flat["Laterality"] = str(elem.value)
    frame_acq = flat.pop("_FrameAcquisitionNumber", None)
    for keyword, val in flat.items():
        if val is not None:
            setattr(ds, keyword, val)
    if "AcquisitionNumber" not in ds and frame_acq is not None:
        ds.AcquisitionNumber = int(frame_acq)  # type: ignore[call-overload]
    acq_dt = str(ds.get("AcquisitionDateTime") or "")
    if acq_dt and "AcquisitionDate" not in ds:
        ds.AcquisitionDate = acq_dt[:8]
        if len(acq_dt) > 8:
            ds.AcquisitionTime = re.split(r"[+-]", acq_dt[8:])[0]
    _classic_contrast(header, ds)
    return ds


def _classic_contrast(header: Dataset, ds: Dataset) -> None:
    """Enhanced Contrast/Bolus items -> classic ContrastBolusAgent (+ code, route, volume)."""
    agents = header.get("ContrastBolusAgentSequence")
    if not agents:
        return
    codes, names, routes, volume, conc = [], [], [], 0.0, None
    for item in agents:
        if item.get("CodeValue") is not None:
            code = Dataset()
            for kw in ("CodeValue", "CodingSchemeDesignator", "CodingSchemeVersion", "CodeMeaning"):
                if kw in item:
                    setattr(code, kw, item[kw].value)
            codes.append(code)
        names.append(str(item.get("CodeMeaning") or ""))
        route = _first(item.get("ContrastBolusAdministrationRouteSequence"))
        if route is not None and route.get("CodeMeaning"):
            routes.append(str(route.CodeMeaning))
        if item.get("ContrastBolusVolume") is not None:
            volume += float(item.ContrastBolusVolume)
        if item.get("ContrastBolusIngredientConcentration") is not None and conc is None:
            conc = item.ContrastBolusIngredientConcentration
    ds.ContrastBolusAgent = "/".join(n for n in names if n)[:64]
    if codes:
        ds.ContrastBolusAgentSequence = DicomSequence(codes)
    if routes:
        ds.ContrastBolusRoute = "/".join(dict.fromkeys(routes))[:64]
    if volume:
        ds.ContrastBolusVolume = f"{volume:.6g}"
    if conc is not None:
        ds.ContrastBolusIngredientConcentration = conc


@dataclass(frozen=True)
class DerivedInfo:
    """What a writer states about itself in every derived instance it makes."""

    model_name: str  # ManufacturerModelName, e.g. "ldct denoise" or "ldct simulate"
    software_versions: tuple[str, ...] = (__version__,)
    derivation_codes: tuple[tuple[str, str, str], ...] = (SMOOTHING,)
    created: dt.datetime | None = None  # the series' creation time (one for all instances)
    #: simulated dose fraction: the source's tube current, exposure and CTDIvol are scaled by it
    dose_factor: float | None = None


_TZ = re.compile(r"^([+-])(\d\d)(\d\d)$")


def creation_time(source: Dataset | None) -> dt.datetime:
    """Now, in the source's TimezoneOffsetFromUTC when it states one (times stay comparable)."""
    offset = str(source.get("TimezoneOffsetFromUTC") or "") if source is not None else ""
    m = _TZ.match(offset.strip())
    if m:
        sign = -1 if m.group(1) == "-" else 1
        tz = dt.timezone(sign * dt.timedelta(hours=int(m.group(2)), minutes=int(m.group(3))))
        return dt.datetime.now(tz)
    return dt.datetime.now().astimezone()


def contributing_equipment(source: Dataset) -> list[Dataset]:
    """The source's contributing equipment, plus its own equipment as acquisition equipment."""
    items = [copy.deepcopy(i) for i in source.get("ContributingEquipmentSequence") or []]
    manufacturer = source.get("Manufacturer")
    if manufacturer not in (None, "") and str(manufacturer) != MANUFACTURER:
        item = Dataset()
        for kw in _SOURCE_EQUIPMENT:
            val = source.get(kw)
            if val not in (None, ""):
                setattr(item, kw, copy.deepcopy(val))
        item.PurposeOfReferenceCodeSequence = DicomSequence([code_item(ACQUISITION_EQUIPMENT)])
        item.ContributionDescription = "Acquisition equipment of the source image"
        items.append(item)
    return items


def apply_derived_rules(ds: Dataset, source: Dataset | None, info: DerivedInfo) -> None:
    """Make ``ds`` (built from ``source``'s header) a derived instance made by this software."""
    ds.remove_private_tags()
    src = source if source is not None else Dataset()
    equipment = contributing_equipment(src)
    for kw in _EQUIPMENT_DROP:
        if kw in ds:
            delattr(ds, kw)
    ds.Manufacturer = MANUFACTURER
    ds.ManufacturerModelName = info.model_name[:64]
    ds.SoftwareVersions = [v[:64] for v in info.software_versions]
    if equipment:
        ds.ContributingEquipmentSequence = DicomSequence(equipment)
    elif "ContributingEquipmentSequence" in ds:
        del ds.ContributingEquipmentSequence
    when = info.created or creation_time(src)
    date, time = when.strftime("%Y%m%d"), when.strftime("%H%M%S.%f")
    for prefix in ("Content", "InstanceCreation", "Series"):
        setattr(ds, f"{prefix}Date", date)
        setattr(ds, f"{prefix}Time", time)
    if "TimezoneOffsetFromUTC" not in ds and when.utcoffset() is not None:
        ds.TimezoneOffsetFromUTC = when.strftime("%z")
    if info.derivation_codes:
        ds.DerivationCodeSequence = DicomSequence([code_item(c) for c in info.derivation_codes])
    elif "DerivationCodeSequence" in ds:
        del ds.DerivationCodeSequence
    for item in ds.get("SourceImageSequence") or []:
        item.PurposeOfReferenceCodeSequence = DicomSequence([code_item(SOURCE_FOR_PROCESSING)])
    for kw in _TYPE2_EMPTY:
        if kw not in ds:
            setattr(ds, kw, None)
    if info.dose_factor is not None:
        scale_dose(ds, info.dose_factor)


def _number(ds: Dataset, keyword: str) -> float | None:
    val = ds.get(keyword)
    if val in (None, ""):
        return None
    try:
        return float(val)
    except (TypeError, ValueError):
        return None


def scale_dose(ds: Dataset, factor: float) -> None:
    """Scale the dose attributes present by ``factor`` (a simulated dose fraction).

    XRayTubeCurrent and Exposure are integers (IS: mA, mAs), so the exact scaled values are
    added in XRayTubeCurrentInuA (DS) and ExposureInuAs (IS) when the source gives only the
    integer forms; CTDIvol (mGy) scales linearly with tube current-time product.
    """
    ma, mas = _number(ds, "XRayTubeCurrent"), _number(ds, "Exposure")
    ua, uas = _number(ds, "XRayTubeCurrentInuA"), _number(ds, "ExposureInuAs")
    if ma is not None:
        ds.XRayTubeCurrent = round(ma * factor)
        if ua is None:
            ua = ma * 1000.0
    if ua is not None:
        ds.XRayTubeCurrentInuA = f"{ua * factor:.10g}"[:16]
    if mas is not None:
        ds.Exposure = round(mas * factor)
        if uas is None:
            uas = mas * 1000.0
    if uas is not None:
        ds.ExposureInuAs = round(uas * factor)
    ctdi = _number(ds, "CTDIvol")
    if ctdi is not None:
        ds.CTDIvol = ctdi * factor


def series_description(source_desc: object, meta: dict[str, object], tag: str) -> str:
    """``<source description><tag>`` (64 chars), or ``<modality> series <n><tag>`` without one."""
    text = str(source_desc).strip() if source_desc not in (None, "") else ""
    if not text:
        number = meta.get("SeriesNumber")
        modality = str(meta.get("Modality") or "CT")
        text = f"{modality} series {number}" if number not in (None, "") else f"{modality} series"
    return (text[: 64 - len(tag)] + tag).strip()[:64]
