"""De-identification of outgoing derived instances (``output.deidentify``), PS3.15 Annex E.

The Basic Application Confidentiality Profile removes or replaces every attribute of its Table
E.1-1. Rather than a blacklist of that table (dicognito and deid replace or remove a selection of
it, and keep whatever they do not know, e.g. vendor free text), each derived instance is rebuilt
from an *allowlist*: the attributes a CT image needs for display, geometry, HU and this
pipeline's own provenance, none of which identifies the patient. Everything else is dropped,
including every free-text description of the source, its equipment and all dates and times
(Basic Profile actions X/Z; no Retain option is applied). Identifiers are replaced:

* PatientID and PatientName become the report's keyed pseudonym ``P-<10 hex>`` =
  HMAC-SHA256(key, PatientID) (:class:`pipeline.report.pseudonym.Pseudonymizer` with the same key:
  a de-identified series and a pseudonymised QA report name the patient alike);
* every instance UID (Study, Series, SOP, Frame of Reference, referenced SOP) becomes
  ``derive_uid("deid", <keyed digest>, uid)``: consistent within and across runs with the same
  key (a rerun duplicates nothing, references stay consistent), not reversible without the key.

Pixel data are not cleaned: a source with BurnedInAnnotation YES is refused. Volumes of the head
can still be rendered into a face (Clean Recognizable Visual Features is not applied).
"""

from __future__ import annotations

import copy
import hashlib
import hmac
from collections.abc import Callable

from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence

from pipeline.errors import DicomError
from pipeline.io.dicom_encode import derive_uid

#: kept as they are (image, geometry, HU, acquisition technique, this software's provenance)
KEEP = frozenset(
    {
        "SpecificCharacterSet",
        "ImageType",
        "SOPClassUID",
        "Modality",
        "Manufacturer",  # this software (General Equipment of the derived instance)
        "ManufacturerModelName",
        "SoftwareVersions",
        "SeriesNumber",
        "SeriesDescription",  # built without the source's text when de-identifying
        "InstanceNumber",
        "AcquisitionNumber",
        "PatientPosition",
        "PatientOrientation",
        "Laterality",
        "BodyPartExamined",
        "AnatomicRegionSequence",
        "ImagePositionPatient",
        "ImageOrientationPatient",
        "PositionReferenceIndicator",
        "SliceLocation",
        "SliceThickness",
        "PixelSpacing",
        "SamplesPerPixel",
        "PhotometricInterpretation",
        "Rows",
        "Columns",
        "BitsAllocated",
        "BitsStored",
        "HighBit",
        "PixelRepresentation",
        "PixelPaddingValue",
        "PixelPaddingRangeLimit",
        "RescaleIntercept",
        "RescaleSlope",
        "RescaleType",
        "WindowCenter",
        "WindowWidth",
        "WindowCenterWidthExplanation",
        "LossyImageCompression",
        "LossyImageCompressionRatio",
        "LossyImageCompressionMethod",
        "BurnedInAnnotation",
        "KVP",
        "DataCollectionDiameter",
        "ReconstructionDiameter",
        "DistanceSourceToDetector",
        "DistanceSourceToPatient",
        "GantryDetectorTilt",
        "TableHeight",
        "RotationDirection",
        "ExposureTime",
        "XRayTubeCurrent",
        "XRayTubeCurrentInuA",
        "Exposure",
        "ExposureInuAs",
        "FilterType",
        "GeneratorPower",
        "FocalSpots",
        "ConvolutionKernel",
        "RevolutionTime",
        "SingleCollimationWidth",
        "TotalCollimationWidth",
        "TableSpeed",
        "TableFeedPerRotation",
        "SpiralPitchFactor",
        "CTDIvol",
        "ScanOptions",
        "DerivationDescription",  # this software's text (model, version, weights hash)
        "DerivationCodeSequence",
        "PixelData",
    }
)
#: Type 2 attributes of the CT IOD kept present but empty (Basic Profile action Z)
EMPTY = (
    "PatientBirthDate",
    "PatientSex",
    "StudyDate",
    "StudyTime",
    "ReferringPhysicianName",
    "StudyID",
    "AccessionNumber",
    "ContentDate",
    "ContentTime",
    "ContrastBolusAgent",
)
BASIC_PROFILE = ("113100", "DCM", "Basic Application Confidentiality Profile")
METHOD = "ldct-pipeline: Basic Profile allowlist, keyed HMAC pseudonyms"  # LO: <= 64


def _uid_secret(key: str) -> str:
    return hmac.new(key.encode(), b"ldct deid uid", hashlib.sha256).hexdigest()


def key_fingerprint(key: str) -> str:
    """A digest of the key for resume fingerprints (tells keys apart, reveals nothing)."""
    return hashlib.sha256(_uid_secret(key).encode()).hexdigest()[:16] if key else ""


class Deidentifier:
    """Rebuilds derived instances without identifying attributes (see the module docstring)."""

    def __init__(self, key: str, pseudonym: Callable[[str], str]) -> None:
        if not key:
            raise DicomError("de-identification needs a key (LDCT_PSEUDONYM_KEY)")
        self._uid_secret = _uid_secret(key)
        self._pseudonym = pseudonym

    def uid(self, uid: str) -> str:
        """The replacement of an instance UID (same key and UID -> same replacement)."""
        return derive_uid("deid", self._uid_secret, uid)

    def __call__(self, ds: Dataset) -> Dataset:
        """A new dataset holding only the allowed attributes of ``ds``, identifiers replaced."""
        if str(ds.get("BurnedInAnnotation") or "").upper() == "YES":
            raise DicomError("source has burned-in annotation (BurnedInAnnotation YES): "
                             "its pixel data cannot be de-identified")  # fmt: skip
        out = Dataset()
        for elem in ds:
            if elem.keyword in KEEP:
                out.add(copy.deepcopy(elem))
        alias = self._pseudonym(str(ds.get("PatientID") or ""))
        out.PatientID = alias
        out.PatientName = alias
        for kw in EMPTY:
            setattr(out, kw, None)
        for kw in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID",
                   "FrameOfReferenceUID"):  # fmt: skip
            if ds.get(kw):
                setattr(out, kw, self.uid(str(ds.get(kw))))
        refs = []
        for item in ds.get("SourceImageSequence") or []:
            ref = copy.deepcopy(item)
            ref.ReferencedSOPInstanceUID = self.uid(str(item.ReferencedSOPInstanceUID))
            refs.append(ref)
        if refs:
            out.SourceImageSequence = DicomSequence(refs)
        out.PatientIdentityRemoved = "YES"
        out.DeidentificationMethod = METHOD
        code = Dataset()
        code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = BASIC_PROFILE
        out.DeidentificationMethodCodeSequence = DicomSequence([code])
        meta = copy.deepcopy(ds.file_meta)
        meta.MediaStorageSOPInstanceUID = out.SOPInstanceUID
        out.file_meta = meta
        return out
