"""The Orthanc fixture itself: a real PACS that stores, answers REST and DICOM, and stops."""

from __future__ import annotations

import os
from pathlib import Path

import pydicom
import pytest
from orthanc_server import OrthancServer, find_orthanc, free_port

from pipeline.io.write import write_new_series


def _tiny_series(folder: Path, n: int = 2) -> list[Path]:
    import numpy as np

    hu = np.zeros((n, 8, 8), np.float32)
    hu[:, 2:6, 2:6] = 40.0
    return write_new_series(
        hu,
        (2.0, 1.0, 1.0),
        (0.0, 0.0, 0.0),
        np.eye(3),
        folder,
        patient_id="FIX1",
        patient_name="Fixture^Test",
        series_description="fixture",
        series_number=2,
        uid_key="orthanc-fixture",
    ).paths


def test_orthanc_stores_and_answers(orthanc: OrthancServer, tmp_path: Path) -> None:
    from pynetdicom import AE
    from pynetdicom.sop_class import Verification

    paths = _tiny_series(tmp_path / "s")
    for p in paths:
        orthanc.upload(p)
    assert orthanc.instance_count() == len(paths)
    study_uid = pydicom.dcmread(paths[0], stop_before_pixels=True).StudyInstanceUID
    series = orthanc.series_of_study(study_uid)
    assert len(series) == 1 and len(series[0]["Instances"]) == len(paths)
    # re-uploading the same SOP Instance UID does not add an instance
    orthanc.upload(paths[0])
    assert orthanc.instance_count() == len(paths)
    # DICOM side: C-ECHO is always allowed
    ae = AE(ae_title="ECHOSCU")
    ae.add_requested_context(Verification)
    assoc = ae.associate("127.0.0.1", orthanc.dicom_port, ae_title=orthanc.aet)
    assert assoc.is_established
    status = assoc.send_c_echo()
    assoc.release()
    assert status.Status == 0x0000


def test_orthanc_refuses_unknown_store_peer(orthanc: OrthancServer, tmp_path: Path) -> None:
    from pynetdicom import AE
    from pynetdicom.sop_class import CTImageStorage

    paths = _tiny_series(tmp_path / "s", n=1)
    ae = AE(ae_title="STRANGER")
    ae.add_requested_context(CTImageStorage)
    assoc = ae.associate("127.0.0.1", orthanc.dicom_port, ae_title=orthanc.aet)
    stored = False
    if assoc.is_established:
        status = assoc.send_c_store(pydicom.dcmread(paths[0]))
        stored = bool(status) and status.Status == 0x0000
        assoc.release()
    assert not stored
    assert orthanc.instance_count() == 0
    # once declared as a modality, the same AE title may store
    orthanc.add_modality("stranger", "STRANGER", free_port())
    assoc = ae.associate("127.0.0.1", orthanc.dicom_port, ae_title=orthanc.aet)
    assert assoc.is_established
    assert assoc.send_c_store(pydicom.dcmread(paths[0])).Status == 0x0000
    assoc.release()
    assert orthanc.instance_count() == 1


def test_orthanc_is_stopped_by_pid(tmp_path: Path) -> None:
    if find_orthanc() is None:
        pytest.skip("Orthanc is not installed")
    server = OrthancServer(root=tmp_path / "o")
    server.start()
    assert server.process is not None
    pid = server.process.pid
    server.stop()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
