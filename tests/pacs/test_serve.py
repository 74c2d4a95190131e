"""``ldct serve`` as a process: durability across kill -9, access control, quarantine,
backpressure, TLS, status; the destination is a real Orthanc."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pydicom
import pytest
from orthanc_server import OrthancServer, free_port
from pacs_helpers import ct_study, tiny_checkpoint, uids
from serve_helpers import ServeProcess, log_events, send, sender, wait_for


@pytest.fixture
def procs() -> Iterator[list[ServeProcess]]:
    started: list[ServeProcess] = []
    yield started
    for p in started:
        p.stop()


def _serve(
    procs: list[ServeProcess],
    tmp: Path,
    orthanc: OrthancServer | None,
    extra: list[str],
    port: int | None = None,
) -> ServeProcess:
    port = port or free_port()
    args = ["--allow-aet", "SENDER", "--quiet", "1.5", *extra]
    if orthanc is not None:
        args += [
            "--dest",
            f"{orthanc.aet}@127.0.0.1:{orthanc.dicom_port}",
            "--model",
            str(tiny_checkpoint(tmp / "m.pt")),
            "--timeout",
            "10",
        ]
    p = ServeProcess(tmp / "spool", port, args, tmp / "serve.log")
    procs.append(p)
    return p.start()


def _derived_series(orthanc: OrthancServer, study_uid: str) -> list[dict]:
    return orthanc.series_of_study(study_uid)


def test_kill9_mid_study_and_mid_denoise_gives_one_complete_series(
    orthanc: OrthancServer, tmp_path: Path, procs: list[ServeProcess]
) -> None:
    n = 12
    files = ct_study(tmp_path / "src", n_slices=n, size=64)
    study_uid = uids(files[0])[0]
    port = free_port()
    orthanc.add_modality("ldct", "LDCT", port)
    svc = _serve(procs, tmp_path, orthanc, ["--set", "batch_size=1"], port)
    spool = svc.spool
    # mid-study: 10 instances acknowledged, then the service dies with the association open
    ae = sender()
    assoc = ae.associate("127.0.0.1", port, ae_title="LDCT")
    assert assoc.is_established
    acked = []
    for f in files[:10]:
        assert assoc.send_c_store(pydicom.dcmread(f)).Status == 0
        acked.append(uids(f)[2])
    svc.kill9()
    assoc.abort()
    on_disk = {p.stem for p in (spool / "incoming" / study_uid).glob("*.dcm")}
    assert set(acked) <= on_disk  # every acknowledged instance survived kill -9
    # restart; the sender retries the whole study (a resend overwrites, adds nothing)
    svc.start()
    assert send(files, port) == [0] * n
    # mid-denoise: kill as soon as the job's series is being written (staging present)
    work = spool / "work"
    staging = wait_for(lambda: list(work.glob("*/out/.ldct-staging/*")), 60, "denoise staging")
    svc.kill9()
    job_out = staging[0].parents[1]
    assert not (job_out / "manifest.json").exists(), "the kill came after the denoise finished"
    assert orthanc.instance_count() == 0
    svc.start()

    def finished() -> bool:
        return any(e["event"] == "done" for e in log_events(spool)) and not any(
            any((spool / d).iterdir()) for d in ("incoming", "queue", "work", "tmp")
        )

    wait_for(finished, 90, "the study to be denoised and sent\n" + svc.log_text(), step=0.2)
    series = _derived_series(orthanc, study_uid)
    assert len(series) == 1, series
    (derived,) = series
    assert len(derived["Instances"]) == n
    assert derived["MainDicomTags"]["SeriesInstanceUID"] != uids(files[0])[1]
    assert orthanc.instance_count() == n
    done = [e for e in log_events(spool) if e["event"] == "done"]
    assert len(done) == 1 and done[0]["instances"] == n and done[0]["derived_instances"] == n
    assert (
        study_uid not in (spool / "log" / "studies.jsonl").read_text()
    )  # no UID without --log-phi
    assert svc.terminate() == 0


@pytest.mark.slow
def test_bad_peers_wrong_ae_dropped_association_malformed_instance(
    orthanc: OrthancServer, tmp_path: Path, procs: list[ServeProcess]
) -> None:
    port = free_port()
    orthanc.add_modality("ldct", "LDCT", port)
    # the profile denoises what remains of a series with a quarantined slice (a gap in z);
    # without allow_incomplete the study goes to failed/ naming the missing slice
    svc = _serve(procs, tmp_path, orthanc, ["--set", "allow_incomplete=true"], port)
    files = ct_study(tmp_path / "src", n_slices=5, size=32)
    study_uid = uids(files[0])[0]
    # wrong calling AE: rejected, permanent, "calling AE title not recognised"
    bad = sender("INTRUDER").associate("127.0.0.1", port, ae_title="LDCT")
    assert bad.is_rejected and not bad.is_established
    rj = bad.acceptor.primitive
    assert (rj.result, rj.result_source, rj.diagnostic) == (1, 1, 3)
    # a sender that drops mid-association: what was acknowledged is kept
    ae = sender()
    assoc = ae.associate("127.0.0.1", port, ae_title="LDCT")
    for f in files[:2]:
        assert assoc.send_c_store(pydicom.dcmread(f)).Status == 0
    assoc.abort()
    # a malformed instance (pixel data cut short) is refused and quarantined with the reason
    broken = pydicom.dcmread(files[2])
    broken.PixelData = broken.PixelData[:100]
    assoc = ae.associate("127.0.0.1", port, ae_title="LDCT")
    assert assoc.send_c_store(broken).Status == 0xC000
    for f in files[3:]:
        assert assoc.send_c_store(pydicom.dcmread(f)).Status == 0
    assoc.release()
    (q,) = list((svc.spool / "quarantine").iterdir())
    reason = json.loads((q / "reason.json").read_text())["reason"]
    assert "PixelData" in reason and (q / "instance.dcm").is_file()
    # the rest of the study is processed: 4 good instances -> 4 derived
    wait_for(
        lambda: any(e["event"] in ("done", "failed") for e in log_events(svc.spool)),
        60,
        "the study\n" + svc.log_text(),
        step=0.2,
    )
    assert [e["event"] for e in log_events(svc.spool)][-1] == "done", log_events(svc.spool)
    (derived,) = _derived_series(orthanc, study_uid)
    assert len(derived["Instances"]) == 4
    assert svc.spool.joinpath("queue").exists() and not any((svc.spool / "queue").iterdir())


def test_backpressure_status_and_graceful_stop(
    tmp_path: Path, procs: list[ServeProcess], run_cli: Callable
) -> None:
    svc = _serve(procs, tmp_path, None, ["--workers", "0", "--max-queue", "1", "--quiet", "0.3"])
    files = ct_study(tmp_path / "src", n_slices=2, size=16)
    assert send(files, svc.port) == [0, 0]
    wait_for(lambda: any((svc.spool / "queue").iterdir()), 20, "the study to be queued")
    full = sender().associate("127.0.0.1", svc.port, ae_title="LDCT")
    rj = full.acceptor.primitive
    assert full.is_rejected and (rj.result, rj.result_source, rj.diagnostic) == (2, 3, 2)
    # a calling AE title not in --allow-aet: permanent rejection, "calling AE not recognised"
    bad = sender("INTRUDER").associate("127.0.0.1", svc.port, ae_title="LDCT")
    rj = bad.acceptor.primitive
    assert bad.is_rejected and (rj.result, rj.result_source, rj.diagnostic) == (1, 1, 3)

    def status() -> dict | None:  # the heartbeat is written once a second
        r = run_cli("pacs", "status", "--spool", svc.spool, "--json")
        st = json.loads(r.stdout)
        ok = r.exit_code == 0 and st["service"]["stats"]["rejected_assoc"] == 2
        return st if ok else None

    st = wait_for(status, 30, "the status to count both rejections", step=0.3)  # loaded CI
    assert st["service"]["running"] and st["counts"]["queued_jobs"] == 1
    assert svc.terminate() == 0  # SIGTERM: graceful
    r = run_cli("pacs", "status", "--spool", svc.spool)
    assert r.exit_code == 1 and "NOT running" in r.stdout
    # what was queued is still there for the next start
    assert len(list((svc.spool / "queue").iterdir())) == 1


def test_tls_only(tmp_path: Path, procs: list[ServeProcess]) -> None:
    import ssl

    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed (Debian package openssl)")
    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    svc = _serve(
        procs, tmp_path, None, ["--workers", "0", "--tls-cert", str(cert), "--tls-key", str(key)]
    )
    files = ct_study(tmp_path / "src", n_slices=2, size=16)
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(cert))
    ctx.check_hostname = False
    assert send(files, svc.port, tls=ctx) == [0, 0]
    plain = sender().associate("127.0.0.1", svc.port, ae_title="LDCT")
    assert not plain.is_established
    stored = list((svc.spool / "incoming").rglob("*.dcm")) + list(
        (svc.spool / "queue").rglob("*.dcm")
    )
    assert {p.stem for p in stored} == {uids(f)[2] for f in files}


@pytest.mark.slow
def test_two_worker_processes_drain_one_spool_exactly_once(
    orthanc: OrthancServer, tmp_path: Path, procs: list[ServeProcess]
) -> None:
    port = free_port()
    orthanc.add_modality("ldct", "LDCT", port)
    svc = _serve(procs, tmp_path, orthanc, ["--quiet", "1"], port)
    extra = ServeProcess(
        svc.spool,
        free_port(),
        [
            "--no-scp",
            "--dest",
            f"{orthanc.aet}@127.0.0.1:{orthanc.dicom_port}",
            "--model",
            str(tmp_path / "m.pt"),
        ],
        tmp_path / "worker2.log",
    )
    procs.append(extra)
    extra.start(ready=False)
    assert extra.proc is not None
    heartbeat = svc.spool / f"status.{extra.proc.pid}.json"
    wait_for(heartbeat.exists, 60, "the extra worker's heartbeat\n" + extra.log_text())
    studies = [
        ct_study(tmp_path / f"s{i}", patient_id=f"W{i}", n_slices=3, size=32, seed=i)
        for i in range(4)
    ]
    for files in studies:
        assert send(files, port) == [0, 0, 0]
    wait_for(
        lambda: sum(e["event"] == "done" for e in log_events(svc.spool)) >= 4,
        120,
        "four studies\n" + svc.log_text() + extra.log_text(),
        step=0.3,
    )
    done = [e for e in log_events(svc.spool) if e["event"] == "done"]
    assert len(done) == 4 and len({e["study"] for e in done}) == 4  # each study exactly once
    for files in studies:
        (derived,) = orthanc.series_of_study(uids(files[0])[0])
        assert len(derived["Instances"]) == 3
    assert extra.terminate() == 0 and svc.terminate() == 0
    assert not any(any((svc.spool / d).iterdir()) for d in ("incoming", "queue", "work"))


@pytest.mark.slow
def test_serve_sends_with_stow_rs(
    orthanc: OrthancServer,
    tmp_path: Path,
    procs: list[ServeProcess],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if not orthanc.dicomweb:
        pytest.skip("Orthanc's DICOMweb plugin (Debian orthanc-dicomweb) is not installed")
    monkeypatch.setenv("LDCT_DICOMWEB_PASSWORD", orthanc.auth[1])  # inherited by the service
    port = free_port()
    svc = ServeProcess(
        tmp_path / "spool",
        port,
        [
            "--allow-aet",
            "SENDER",
            "--quiet",
            "1",
            "--dest-dicomweb",
            orthanc.dicomweb_url,
            "--dest-web-user",
            orthanc.auth[0],
            "--model",
            str(tiny_checkpoint(tmp_path / "m.pt")),
        ],
        tmp_path / "serve.log",
    )
    procs.append(svc)
    svc.start()
    files = ct_study(tmp_path / "src", n_slices=3, size=32)
    assert send(files, port) == [0, 0, 0]
    wait_for(
        lambda: any(e["event"] in ("done", "failed") for e in log_events(svc.spool)),
        60,
        "the study\n" + svc.log_text(),
        step=0.2,
    )
    assert [e["event"] for e in log_events(svc.spool)][-1] == "done", log_events(svc.spool)
    (derived,) = orthanc.series_of_study(uids(files[0])[0])
    assert len(derived["Instances"]) == 3
