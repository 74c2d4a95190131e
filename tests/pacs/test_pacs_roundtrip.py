"""PACS in, PACS out against a real Orthanc: find, get (C-GET / C-MOVE / WADO-RS), denoise,
send back (C-STORE / STOW-RS), and check through Orthanc's REST API what arrived."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pydicom
import pytest
from orthanc_server import OrthancServer, free_port
from pacs_helpers import ct_study, tiny_checkpoint, uids


def _pacs(o: OrthancServer) -> str:
    return f"{o.aet}@127.0.0.1:{o.dicom_port}"


def _load_study(
    o: OrthancServer, tmp: Path, patient: str = "PACS1", n: int = 4, seed: int = 0
) -> tuple[str, list[Path]]:
    files = ct_study(tmp / f"src-{patient}-{seed}", patient_id=patient, n_slices=n, seed=seed)
    for f in files:
        o.upload(f)
    return uids(files[0])[0], files


def _derived_rows(out: Path) -> list[dict]:
    rows = json.loads((out / "manifest.json").read_text())["rows"]
    return [r for r in rows if r["status"] == "ok"]


def test_find_get_denoise_send_roundtrip(
    orthanc: OrthancServer, tmp_path: Path, run_cli: Callable
) -> None:
    orthanc.add_modality("ldct", "LDCT", free_port())
    study_uid, src = _load_study(orthanc, tmp_path, n=4)
    _load_study(orthanc, tmp_path, patient="OTHER", n=2, seed=1)  # must not match
    src_sops = {uids(f)[2] for f in src}

    r = run_cli("pacs", "find", "--pacs", _pacs(orthanc), "--patient-id", "PACS1", "--json")
    assert r.exit_code == 0, r.stderr
    found = json.loads(r.stdout)
    assert [s["study_uid"] for s in found] == [study_uid]
    assert found[0]["n_instances"] == 4 and found[0]["modalities"] == "CT"
    r = run_cli("pacs", "find", "--pacs", _pacs(orthanc), "--date", "19000101-19000102", "--json")
    assert r.exit_code == 0 and json.loads(r.stdout) == []

    pulled = tmp_path / "pulled"
    r = run_cli(
        "pacs",
        "get",
        "--pacs",
        _pacs(orthanc),
        "--study",
        study_uid,
        "--out",
        pulled,
        "--retries",
        "0",
    )
    assert r.exit_code == 0, r.stdout + r.stderr
    got = sorted(pulled.rglob("*.dcm"))
    assert {uids(f)[2] for f in got} == src_sops
    # the bytes are the instances as stored (pixel data identical to the source files)
    by_sop = {uids(f)[2]: f for f in src}
    for f in got:
        a, b = pydicom.dcmread(f), pydicom.dcmread(by_sop[uids(f)[2]])
        assert a.pixel_array.tobytes() == b.pixel_array.tobytes()
    record = json.loads((pulled / "retrieve.json").read_text())["studies"]
    assert record[0]["status"] == "ok" and record[0]["n_received"] == 4

    out = tmp_path / "den"
    ckpt = tiny_checkpoint(tmp_path / "m.pt")
    r = run_cli("denoise", pulled, "--out", out, "--model", ckpt)
    assert r.exit_code == 0, r.stdout + r.stderr
    (row,) = _derived_rows(out)
    before = orthanc.instance_count()

    r = run_cli("pacs", "send", out, "--to", _pacs(orthanc), "--retries", "0")
    assert r.exit_code == 0, r.stdout + r.stderr
    series = {
        s["MainDicomTags"]["SeriesInstanceUID"]: s for s in orthanc.series_of_study(study_uid)
    }
    assert set(series) == {uids(src[0])[1], row["derived_series_uid"]}
    derived = series[row["derived_series_uid"]]
    assert len(derived["Instances"]) == 4
    sent_sops = {
        orthanc.get(f"/instances/{i}")["MainDicomTags"]["SOPInstanceUID"]
        for i in derived["Instances"]
    }
    out_files = [p for p in Path(row["output_path"]).iterdir() if p.suffix == ".dcm"]
    assert sent_sops == {uids(p)[2] for p in out_files}
    assert orthanc.instance_count() == before + 4
    send = json.loads((out / "send-manifest.json").read_text())["rows"]
    assert len(send) == 4 and {s["status"] for s in send} == {"sent"}
    assert {s["dimse_status"] for s in send} == {"0x0000"}

    # rerun: nothing to do; --resend: sent again, and the PACS still holds one copy of each
    r = run_cli("pacs", "send", out, "--to", _pacs(orthanc))
    assert r.exit_code == 0 and "0 sent, 4 already sent" in r.stdout
    r = run_cli("pacs", "send", out, "--to", _pacs(orthanc), "--resend")
    assert r.exit_code == 0 and "4 sent" in r.stdout
    assert orthanc.instance_count() == before + 4
    assert len(orthanc.series_of_study(study_uid)) == 2


def test_get_by_c_move_to_our_own_scp(
    orthanc: OrthancServer, tmp_path: Path, run_cli: Callable
) -> None:
    port = free_port()
    orthanc.add_modality("ldct", "LDCT", port)
    study_uid, src = _load_study(orthanc, tmp_path, n=3)
    pulled = tmp_path / "pulled"
    r = run_cli(
        "pacs",
        "get",
        "--pacs",
        _pacs(orthanc),
        "--patient-id",
        "PACS1",
        "--out",
        pulled,
        "--method",
        "move",
        "--move-port",
        str(port),
        "--retries",
        "0",
    )
    assert r.exit_code == 0, r.stdout + r.stderr
    assert {uids(f)[2] for f in pulled.rglob("*.dcm")} == {uids(f)[2] for f in src}
    assert all(f.parent.parent.name == study_uid for f in pulled.rglob("*.dcm"))


def test_dicomweb_qido_wado_stow(
    orthanc: OrthancServer, tmp_path: Path, run_cli: Callable, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not orthanc.dicomweb:
        pytest.skip("Orthanc's DICOMweb plugin (Debian orthanc-dicomweb) is not installed")
    monkeypatch.setenv("LDCT_DICOMWEB_PASSWORD", orthanc.auth[1])
    web = ["--dicomweb", orthanc.dicomweb_url, "--web-user", orthanc.auth[0]]
    study_uid, src = _load_study(orthanc, tmp_path, n=3)
    r = run_cli("pacs", "find", *web, "--modality", "CT", "--json")
    assert r.exit_code == 0, r.stderr
    assert [s["study_uid"] for s in json.loads(r.stdout)] == [study_uid]
    pulled = tmp_path / "pulled"
    r = run_cli("pacs", "get", *web, "--study", study_uid, "--out", pulled, "--retries", "0")
    assert r.exit_code == 0, r.stdout + r.stderr
    got = sorted(pulled.rglob("*.dcm"))
    assert {uids(f)[2] for f in got} == {uids(f)[2] for f in src}
    out = tmp_path / "den"
    r = run_cli("denoise", pulled, "--out", out, "--model", tiny_checkpoint(tmp_path / "m.pt"))
    assert r.exit_code == 0, r.stdout + r.stderr
    (row,) = _derived_rows(out)
    r = run_cli("pacs", "send", out, *web, "--retries", "0")
    assert r.exit_code == 0, r.stdout + r.stderr
    series = {
        s["MainDicomTags"]["SeriesInstanceUID"]: s for s in orthanc.series_of_study(study_uid)
    }
    assert len(series[row["derived_series_uid"]]["Instances"]) == 3
    # wrong password: HTTP 401 named, exit 5
    monkeypatch.setenv("LDCT_DICOMWEB_PASSWORD", "wrong")
    r = run_cli("pacs", "find", *web, "--modality", "CT", "--retries", "0")
    assert r.exit_code == 5 and "HTTP 401" in r.stderr


def test_network_errors_are_clear(
    orthanc: OrthancServer, tmp_path: Path, run_cli: Callable
) -> None:
    import socket

    # calling AE not known to the PACS: Orthanc aborts the C-FIND
    r = run_cli("pacs", "find", "--pacs", _pacs(orthanc), "--patient-id", "X", "--aet", "NOBODY")
    assert r.exit_code == 5 and "'NOBODY'" in r.stderr and "aborted" in r.stderr
    # wrong called AE title: association rejected with the reason
    r = run_cli(
        "pacs", "find", "--pacs", f"WRONG@127.0.0.1:{orthanc.dicom_port}", "--patient-id", "X"
    )
    assert r.exit_code == 5 and "rejected" in r.stderr and "called AE title" in r.stderr
    # nobody listening
    r = run_cli("pacs", "echo", "--pacs", f"X@127.0.0.1:{free_port()}", "--retries", "0")
    assert r.exit_code == 5 and "connection refused" in r.stderr
    # a peer that accepts TCP but never answers: our timeout, named as such
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        r = run_cli(
            "pacs", "echo", "--pacs", f"X@127.0.0.1:{port}", "--timeout", "1", "--retries", "0"
        )
    assert r.exit_code == 5 and "timeout" in r.stderr
    # bad options are usage errors
    assert run_cli("pacs", "find", "--pacs", "nonsense", "--patient-id", "X").exit_code == 2
    assert run_cli("pacs", "find", "--pacs", _pacs(orthanc)).exit_code == 2
    assert run_cli("pacs", "find", "--pacs", _pacs(orthanc), "--date", "2020").exit_code == 2
    # send without a denoise manifest names the folder
    r = run_cli("pacs", "send", tmp_path, "--to", _pacs(orthanc))
    assert r.exit_code == 3 and "manifest" in r.stderr
