"""Training envelope: checkpoint round trip, the check() reasons, DICOM plausibility."""

from __future__ import annotations

import pytest

from pipeline.errors import ConfigError
from pipeline.models.envelope import (
    EXTRA_KEY,
    SeriesFacts,
    TrainingEnvelope,
    dicom_plausibility,
    envelope_from_extra,
    guardrail_notes,
    review_reasons,
)

ENV = {
    "pixel_spacing_mm": [0.7, 1.5],
    "slice_thickness_mm": [1.0, 3.0],
    "dose_fraction": [0.1, 0.5],
    "kernels": ["ramp", "B30f"],
    "matrix": [256, 512],
    "kvp": [100, 140],
    "source": "simulated",
}
INSIDE = SeriesFacts(
    pixel_spacing_mm=(0.976, 0.976),
    slice_thickness_mm=2.0,
    matrix=(512, 512),
    kernel="b30f",
    kvp=120.0,
    ctdivol_mgy=3.2,
    transfer_syntaxes=("1.2.840.10008.1.2.1",),
)


def test_round_trip_through_checkpoint_extra() -> None:
    env = TrainingEnvelope.from_dict(ENV)
    assert env.to_dict() == ENV
    assert envelope_from_extra({EXTRA_KEY: env.to_dict()}) == env
    assert envelope_from_extra({}) is None and envelope_from_extra(None) is None


def test_inside_the_envelope_has_no_reasons() -> None:
    env = TrainingEnvelope.from_dict(ENV)
    assert env.check(INSIDE) == []
    assert review_reasons(env, INSIDE) == []


def test_neck_ct_at_066_mm_is_outside_an_abdominal_148_mm_envelope() -> None:
    env = TrainingEnvelope.from_dict({**ENV, "pixel_spacing_mm": [1.48, 1.48]})
    reasons = env.check(SeriesFacts(pixel_spacing_mm=(0.66, 0.66)))
    assert reasons == ["pixel spacing (row) 0.66 mm outside the training envelope [1.48, 1.48] mm"]
    # header rounding within 1e-3 is inside
    assert env.check(SeriesFacts(pixel_spacing_mm=(1.4805, 1.4805))) == []


@pytest.mark.parametrize(
    ("facts", "needle"),
    [
        (SeriesFacts(slice_thickness_mm=5.0), "slice thickness 5 mm"),
        (SeriesFacts(dose_fraction=0.05), "dose fraction 0.05"),
        (SeriesFacts(kernel="FC52"), "kernel 'FC52'"),
        (SeriesFacts(matrix=(768, 768)), "matrix 768x768"),
        (SeriesFacts(kvp=80.0), "kVp 80 outside the training envelope"),
    ],
)
def test_each_fact_outside_gives_its_reason(facts: SeriesFacts, needle: str) -> None:
    reasons = TrainingEnvelope.from_dict(ENV).check(facts)
    assert len(reasons) == 1 and needle in reasons[0]


def test_plausibility_lossy_kvp_ctdivol() -> None:
    assert dicom_plausibility(INSIDE) == []
    lossy = SeriesFacts(kvp=120.0, transfer_syntaxes=("1.2.840.10008.1.2.4.50",))
    assert "lossy-compressed" in dicom_plausibility(lossy)[0]
    j2k = SeriesFacts(kvp=120.0, transfer_syntaxes=("1.2.840.10008.1.2.4.91",))
    assert "may be lossy" in dicom_plausibility(j2k)[0]
    j2k_lossless = SeriesFacts(
        kvp=120.0, transfer_syntaxes=("1.2.840.10008.1.2.4.91",), lossy_image_compression="00"
    )
    assert dicom_plausibility(j2k_lossless) == []
    assert dicom_plausibility(SeriesFacts()) == []  # nothing recorded: nothing implausible
    assert guardrail_notes(None, SeriesFacts()) == [
        "model records no training envelope: applicability not checked",
        "kVp (0018,0060) not recorded",
        "CTDIvol (0018,9345) not recorded",
    ]
    assert guardrail_notes(None, INSIDE, learned=False) == []
    assert "kVp 20 outside" in dicom_plausibility(SeriesFacts(kvp=20.0))[0]
    assert "CTDIvol 900 mGy" in dicom_plausibility(SeriesFacts(kvp=120.0, ctdivol_mgy=900.0))[0]
    assert review_reasons(None, INSIDE) == []


def test_facts_from_a_real_lossy_dicom_header() -> None:
    """pydicom's 693_J2KI.dcm is lossy JPEG 2000 (LossyImageCompression 01)."""
    from pydicom.data import get_testdata_file

    from pipeline.io.read import read_volume

    src = get_testdata_file("693_J2KI.dcm", download=False)
    if src is None:
        pytest.skip("693_J2KI.dcm not shipped with this pydicom")
    from pathlib import Path

    vol = read_volume(Path(src).parent / "693_J2KI.dcm")
    facts = SeriesFacts.from_meta(vol.meta, vol.spacing_mm)
    assert facts.lossy is True
    assert facts.matrix == (512, 512)
    assert facts.pixel_spacing_mm == pytest.approx((0.478516, 0.478516))
    env = TrainingEnvelope.from_dict({**ENV, "pixel_spacing_mm": [0.6, 1.0]})
    reasons = review_reasons(env, facts)
    assert any("pixel spacing" in r for r in reasons)
    assert any("lossy-compressed" in r for r in reasons)


@pytest.mark.parametrize(
    "bad",
    [
        {"dose_fraction": [0.1, 0.5]},
        {**ENV, "pixel_spacing_mm": [2.0, 1.0]},
        {**ENV, "kvp": [120]},
        {**ENV, "pixel_spacing_mm": ["a", 1.0]},
        [1, 2],
    ],
)
def test_malformed_envelope_is_a_config_error(bad: object) -> None:
    with pytest.raises(ConfigError, match="training envelope"):
        TrainingEnvelope.from_dict(bad)
