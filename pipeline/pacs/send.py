"""Send the derived series a denoise manifest lists (C-STORE or STOW-RS), one result per instance.

The files come from the manifest, not from a walk of the output tree: each ``ok`` row's
``output_path`` is a published DICOM folder ``OUT/dicom/<rel>`` whose completion marker
(``OUT/series/<rel>/.ldct-complete.json``) lists every file with its SHA-256. Only
files that are DICOM (``DICM`` at offset 128) are sent.

Results go to ``OUT/send-manifest.json`` (written atomically after every series): one row per
instance with its SOP Instance UID, destination, DIMSE status and attempts. A rerun skips
instances already confirmed by the same destination (``--resend`` sends them again; a PACS keeps
one instance per SOP Instance UID, and the UIDs are deterministic, so a resend adds nothing).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from pipeline.errors import ExitCode, LdctError
from pipeline.infer.manifest import MANIFEST_JSON
from pipeline.infer.publish import DICOM_DIR, MARKER, RECORD_DIR
from pipeline.pacs.node import NetOptions, Node, TlsConfig
from pipeline.pacs.scu import StoreOutcome, file_identity, store_files
from pipeline.pacs.web import WebNode, stow_files
from pipeline.utils.files import atomic_write_text, read_text

log = logging.getLogger(__name__)

SEND_MANIFEST = "send-manifest.json"


@dataclass
class SendRow:
    """One instance's send result."""

    series_key: str
    derived_series_uid: str
    sop_instance_uid: str
    file: str
    destination: str
    status: str  # sent | failed | already_sent
    dimse_status: str = ""
    error: str = ""
    attempts: int = 0
    sent_at: float = 0.0


@dataclass
class SendSummary:
    rows: list[SendRow]
    text: str
    exit_code: int


def _is_dicom(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            head = fh.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:132] == b"DICM"


def _marker_of(out_root: Path, folder: Path) -> Path:
    """The completion marker of a published DICOM folder ``OUT/dicom/<rel>``: it sits in the
    series record ``OUT/series/<rel>/`` (pipeline.infer.publish), in older outputs beside the
    files."""
    try:
        rel = folder.resolve().relative_to((out_root / DICOM_DIR).resolve())
    except ValueError:
        return folder / MARKER
    record = out_root / RECORD_DIR / rel / MARKER
    return record if record.is_file() or not (folder / MARKER).is_file() else folder / MARKER


def series_to_send(out_root: Path) -> list[tuple[str, str, list[Path]]]:
    """(series_key, derived_series_uid, DICOM files) for every ``ok`` row of the manifest."""
    mpath = out_root / MANIFEST_JSON
    if not mpath.is_file():
        raise LdctError(
            f"no denoise manifest ({MANIFEST_JSON}); run `ldct denoise` first", path=out_root
        )
    try:
        rows = json.loads(read_text(mpath, "denoise manifest"))["rows"]
    except (ValueError, KeyError, TypeError) as exc:
        raise LdctError(f"not a denoise manifest ({exc})", path=mpath) from exc
    out: list[tuple[str, str, list[Path]]] = []
    for r in rows:
        if r.get("status") != "ok" or not r.get("output_path"):
            continue
        folder = Path(r["output_path"])
        marker = _marker_of(out_root, folder)
        try:
            names = json.loads(marker.read_text(encoding="utf-8"))["files"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise LdctError(
                f"series has no readable completion marker {marker} ({exc}); was the output "
                "moved or edited?",
                path=folder,
            ) from exc
        paths = [
            folder / n[len(DICOM_DIR) + 1 :] if n.startswith(f"{DICOM_DIR}/") else marker.parent / n
            for n in sorted(names)
        ]
        files = [p for p in paths if _is_dicom(p)]
        if not files:
            raise LdctError(
                "manifest lists this series as ok but it holds no DICOM file", path=folder
            )
        out.append((str(r.get("series_key", "")), str(r.get("derived_series_uid", "")), files))
    return out


def _load(path: Path) -> dict[tuple[str, str], SendRow]:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        rows = [SendRow(**r) for r in data["rows"]]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise LdctError(
            f"unreadable send manifest ({exc}); move it away to start over", path=path
        ) from exc
    return {(r.sop_instance_uid, r.destination): r for r in rows}


def send_outputs(
    out_root: Path,
    *,
    calling_aet: str,
    node: Node | None = None,
    web: WebNode | None = None,
    tls: TlsConfig | None = None,
    opts: NetOptions | None = None,
    resend: bool = False,
    echo: Callable[[str], None] = print,
) -> SendSummary:
    """Send every derived series of ``out_root``'s manifest to ``node`` (or ``web``)."""
    opts = opts or NetOptions()
    if (node is None) == (web is None):
        raise LdctError("give exactly one destination: --to AET@host:port or --dicomweb URL")
    dest = str(node if node is not None else web)
    series = series_to_send(out_root)
    mpath = out_root / SEND_MANIFEST
    state = _load(mpath)
    t0 = time.perf_counter()
    this_run: list[SendRow] = []
    for i, (key, duid, files) in enumerate(series, 1):
        items = _pending(key, duid, files, dest, state, this_run, resend)

        def note(o: StoreOutcome, _k: str = key, _d: str = duid) -> None:
            prev = state.get((o.sop_instance_uid, dest))
            row = SendRow(
                _k,
                _d,
                o.sop_instance_uid,
                str(o.path),
                dest,
                "sent" if o.ok else "failed",
                f"0x{o.status:04X}" if o.status is not None else "",
                o.error,
                attempts=(prev.attempts if prev else 0) + 1,
                sent_at=time.time(),
            )
            state[(o.sop_instance_uid, dest)] = row
            this_run.append(row)

        if items:
            if node is not None:
                store_files(calling_aet, node, items, tls, opts, on_result=note)
            else:
                assert web is not None
                stow_files(web, items, opts, on_result=note)
        atomic_write_text(
            mpath, json.dumps({"rows": [asdict(r) for r in state.values()]}, indent=1)
        )
        sent = sum(r.status == "sent" and r.series_key == key for r in this_run)
        skipped = sum(r.status == "already_sent" and r.series_key == key for r in this_run)
        bad = sum(r.status == "failed" and r.series_key == key for r in this_run)
        echo(
            f"series {i}/{len(series)} {duid}: {sent} sent, {skipped} already sent, "
            f"{bad} failed -> {dest}"
        )
    failed = [r for r in this_run if r.status == "failed"]
    text = _summary_text(this_run, time.perf_counter() - t0, mpath)
    if not series:
        text = f"no denoised series in {out_root / MANIFEST_JSON}; nothing sent"
    return SendSummary(this_run, text, ExitCode.PARTIAL_FAILURE if failed else ExitCode.OK)


def _pending(
    key: str,
    duid: str,
    files: list[Path],
    dest: str,
    state: dict[tuple[str, str], SendRow],
    this_run: list[SendRow],
    resend: bool,
) -> list[tuple[Path, str, str, str]]:
    """The files of one series still to send; those already sent are recorded as such."""
    items = []
    for f in files:
        sop_class, sop, ts = file_identity(f)
        prev = state.get((sop, dest))
        if prev is not None and prev.status in ("sent", "already_sent") and not resend:
            row = SendRow(
                key,
                duid,
                sop,
                str(f),
                dest,
                "already_sent",
                prev.dimse_status,
                attempts=prev.attempts,
                sent_at=prev.sent_at,
            )
            state[(sop, dest)] = row
            this_run.append(row)
            continue
        items.append((f, sop_class, sop, ts))
    return items


def _summary_text(this_run: list[SendRow], wall: float, mpath: Path) -> str:
    failed = [r for r in this_run if r.status == "failed"]
    text = (
        f"{sum(r.status == 'sent' for r in this_run)} sent, "
        f"{sum(r.status == 'already_sent' for r in this_run)} already sent, {len(failed)} "
        f"failed in {wall:.1f} s; send manifest: {mpath}"
    )
    for r in failed[:10]:
        text += f"\nFAILED {r.file}: {r.error or r.dimse_status}"
    return text
