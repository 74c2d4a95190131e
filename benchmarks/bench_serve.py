"""``ldct serve`` throughput: studies/hour with 1 and 2 workers draining one spool.

Run: ``.venv/bin/python benchmarks/bench_serve.py [--studies N] [--slices Z] [--size S]
[--workers 1,2] [--model CKPT]``.

For each worker count: a real Orthanc (tests/orthanc_server.py) is the destination, a fresh
``ldct serve`` process (``--workers W``, ``--quiet 1``) is started and, once it listens, N demo
studies (pipeline.simulate.cohort, Z slices of SxS) are sent with pynetdicom one after the other.
The clock runs from the first C-STORE to the last study's ``done`` event in the spool's
log; studies/hour = N / that time. The quiet period (1 s per study, overlapping with the next
study's transfer) is part of the measured time, as it is in service. The per-study denoise and
send times come from the same log. Orthanc then must hold N derived series of Z instances each.
The model is the bundled demo model unless --model is given.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


def _wait(cond, timeout: float, what: str):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(0.1)
    raise SystemExit(f"timed out waiting for {what}")


def _events(spool: Path) -> list[dict]:
    p = spool / "log" / "studies.jsonl"
    return [json.loads(x) for x in p.read_text().splitlines()] if p.exists() else []


def run(workers: int, studies: list[list[Path]], model: str | None, tmp: Path) -> dict:
    import pydicom
    from orthanc_server import OrthancServer, free_port
    from pynetdicom import AE
    from pynetdicom.sop_class import CTImageStorage

    orthanc = OrthancServer(root=tmp / f"orthanc-{workers}")
    orthanc.start()
    port = free_port()
    orthanc.add_modality("ldct", "LDCT", port)
    spool = tmp / f"spool-{workers}"
    cmd = [
        sys.executable,
        "-m",
        "pipeline.cli.main",
        "serve",
        "--spool",
        str(spool),
        "--port",
        str(port),
        "--allow-aet",
        "BENCH",
        "--quiet",
        "1",
        "--workers",
        str(workers),
        "--dest",
        f"{orthanc.aet}@127.0.0.1:{orthanc.dicom_port}",
    ]
    if model:
        cmd += ["--model", model]
    env = dict(os.environ, PYTHONPATH=str(ROOT), LDCT_NO_PROGRESS="1")
    log = open(tmp / f"serve-{workers}.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    try:

        def listening() -> bool:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    return True
            except OSError:
                return False

        _wait(listening, 120, "ldct serve")
        ae = AE(ae_title="BENCH")
        ae.add_requested_context(CTImageStorage)
        t0 = time.monotonic()
        for files in studies:
            assoc = ae.associate("127.0.0.1", port, ae_title="LDCT")
            assert assoc.is_established
            for f in files:
                assert assoc.send_c_store(pydicom.dcmread(f)).Status == 0
            assoc.release()
        t_sent = time.monotonic() - t0
        n = len(studies)
        _wait(lambda: sum(e["event"] == "done" for e in _events(spool)) >= n, 3600, "studies")
        wall = time.monotonic() - t0
        done = [e for e in _events(spool) if e["event"] == "done"]
        held = orthanc.instance_count()
        want = sum(len(s) for s in studies)
        assert held == want, f"Orthanc holds {held} instances, expected {want}"
        return {
            "workers": workers,
            "studies": n,
            "wall_s": round(wall, 1),
            "send_in_s": round(t_sent, 1),
            "studies_per_hour": round(n / wall * 3600, 1),
            "median_denoise_s": round(statistics.median(e["denoise_s"] for e in done), 2),
            "median_send_s": round(statistics.median(e["send_s"] for e in done), 2),
            "derived_instances_at_orthanc": held,
        }
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(60)
        log.close()
        orthanc.stop()


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--studies", type=int, default=6)
    ap.add_argument("--slices", type=int, default=16)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--model", default=None)
    args = ap.parse_args()
    from pipeline.simulate.cohort import make_demo_cohort

    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        cohort = make_demo_cohort(
            tmp / "cohort", n_patients=args.studies, n_slices=args.slices, size=args.size, seed=7
        )
        studies = [sorted((cohort.root / p["low"]).glob("*.dcm")) for p in cohort.patients]
        print(
            f"# {args.studies} studies of {args.slices} x {args.size}x{args.size}; "
            f"CPU: {_cpu()}, {os.cpu_count()} cores; load {os.getloadavg()[0]:.1f}; "
            f"model: {args.model or 'bundled demo model'}"
        )
        for w in (int(x) for x in args.workers.split(",")):
            print(json.dumps(run(w, studies, args.model, tmp)), flush=True)


if __name__ == "__main__":
    main()
