"""Retrieve studies into a local tree (C-GET, C-MOVE to our own SCP, or WADO-RS), with progress,
retries and a record of what came back (``OUT/retrieve.json``)."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from pathlib import Path

from pipeline.errors import ConfigError, PacsError
from pipeline.pacs.node import NetOptions, Node, TlsConfig
from pipeline.pacs.scu import Received, RetrieveResult, get_study, move_study
from pipeline.pacs.web import WebNode, wado_study
from pipeline.utils.files import atomic_write_text

log = logging.getLogger(__name__)

RETRIEVE_RECORD = "retrieve.json"
METHODS = ("get", "move", "wado")


def retrieve_studies(
    study_uids: list[str],
    out_root: Path,
    *,
    method: str,
    calling_aet: str,
    node: Node | None = None,
    web: WebNode | None = None,
    tls: TlsConfig | None = None,
    opts: NetOptions | None = None,
    listen: tuple[str, int] | None = None,
    expected: dict[str, int | None] | None = None,
    echo: Callable[[str], None] = print,
) -> list[RetrieveResult]:
    """Retrieve every study in ``study_uids`` into ``out_root``; never raises for one study's
    network failure after retries (that study is recorded ``failed``), so the others still run."""
    opts = opts or NetOptions()
    if method not in METHODS:
        raise ConfigError(f"--method must be one of {', '.join(METHODS)}, found {method!r}")
    if method == "wado" and web is None:
        raise ConfigError("--method wado needs --dicomweb URL")
    if method in ("get", "move") and node is None:
        raise ConfigError(f"--method {method} needs --pacs AET@host:port")
    if method == "move" and listen is None:
        raise ConfigError("--method move needs --move-port (the port the PACS sends to)")
    out_root.mkdir(parents=True, exist_ok=True)
    results: list[RetrieveResult] = []
    n = len(study_uids)
    for i, uid in enumerate(study_uids, 1):
        want = (expected or {}).get(uid)
        res = RetrieveResult(study_uid=uid, method=method, status="failed", n_expected=want)
        t0 = time.perf_counter()
        files: set[Path] = set()
        for attempt in range(opts.retries + 1):
            res.attempts = attempt + 1
            try:
                got = _one(method, calling_aet, node, web, uid, out_root, tls, opts, listen)
                received, _completed, failed = got
                files.update(received.files)
                res.n_failed = failed + len(received.rejected)
                res.reason = "; ".join(received.rejected[:3])
                if failed == 0 and not received.rejected and (want is None or len(files) >= want):
                    res.status = "ok"
                    break
                res.status = "partial"
                res.reason = res.reason or (
                    f"{failed} sub-operation(s) failed"
                    if failed
                    else f"{len(files)} of {want} instances arrived"
                )
            except PacsError as exc:
                res.reason = str(exc)
                if not exc.transient:
                    break
            if attempt < opts.retries:
                delay = opts.backoff_s * (2**attempt)
                echo(
                    f"  study {i}/{n} {uid}: {res.reason}; retry {attempt + 1}/{opts.retries} "
                    f"in {delay:.0f} s"
                )
                time.sleep(delay)
        res.n_received = len(files)
        res.seconds = round(time.perf_counter() - t0, 3)
        res.folder = str(out_root / uid) if files else ""
        results.append(res)
        exp = f"/{want}" if want is not None else ""
        echo(
            f"study {i}/{n} {uid}: {res.status}, {res.n_received}{exp} instances "
            f"({method.upper()}, {res.seconds:.1f} s{', ' + res.reason if res.reason else ''})"
        )
    _record(out_root, results)
    return results


def _one(
    method: str,
    calling_aet: str,
    node: Node | None,
    web: WebNode | None,
    uid: str,
    out_root: Path,
    tls: TlsConfig | None,
    opts: NetOptions,
    listen: tuple[str, int] | None,
) -> tuple[Received, int, int]:
    if method == "wado":
        assert web is not None
        received = wado_study(web, uid, out_root, opts)
        return received, len(received.files), 0
    assert node is not None
    if method == "get":
        completed, failed, received = get_study(calling_aet, node, uid, out_root, tls, opts)
    else:
        assert listen is not None
        completed, failed, received = move_study(
            calling_aet, node, uid, out_root, tls, opts, listen
        )
    return received, completed, failed


def _record(out_root: Path, results: list[RetrieveResult]) -> None:
    path = out_root / RETRIEVE_RECORD
    old: dict[str, dict[str, object]] = {}
    if path.is_file():
        try:
            old = {r["study_uid"]: r for r in json.loads(path.read_text("utf-8"))["studies"]}
        except (OSError, ValueError, KeyError, TypeError):
            log.warning("%s: unreadable; rewriting it", path)
    for r in results:
        old[r.study_uid] = r.as_dict()
    atomic_write_text(path, json.dumps({"studies": list(old.values())}, indent=1))
