"""DIMSE client operations: C-ECHO, C-FIND (study level), C-GET / C-MOVE of a study, C-STORE.

Retrieved instances land in a local tree that ``ldct denoise`` reads::

    OUT/<StudyInstanceUID>/<SeriesInstanceUID>/<SOPInstanceUID>.dcm

Each file is written durably (temp + fsync + rename) from the bytes the peer sent (not decoded and
re-encoded). A retried study overwrites its own files (same UIDs, same names), so a retry or a
rerun never duplicates an instance.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from pipeline.errors import ConfigError, PacsError
from pipeline.pacs.durable import inside, is_uid
from pipeline.pacs.node import NetOptions, Node, TlsConfig, associate, make_ae, with_retries
from pipeline.utils.files import atomic_write_bytes

log = logging.getLogger(__name__)

#: Storage SOP classes requested for C-GET and accepted by our C-MOVE/C-STORE SCPs.
CT_STORAGE = (
    "1.2.840.10008.5.1.4.1.1.2",  # CT Image Storage
    "1.2.840.10008.5.1.4.1.1.2.1",  # Enhanced CT Image Storage
    "1.2.840.10008.5.1.4.1.1.2.2",  # Legacy Converted Enhanced CT Image Storage
    "1.2.840.10008.5.1.4.1.1.7",  # Secondary Capture Image Storage
    "1.2.840.10008.5.1.4.1.1.88.11",  # Basic Text SR
    "1.2.840.10008.5.1.4.1.1.88.22",  # Enhanced SR
    "1.2.840.10008.5.1.4.1.1.104.1",  # Encapsulated PDF
    "1.2.840.10008.5.1.4.1.1.66",  # Raw Data
)
STUDY_FIND = "1.2.840.10008.5.1.4.1.2.2.1"
STUDY_MOVE = "1.2.840.10008.5.1.4.1.2.2.2"
STUDY_GET = "1.2.840.10008.5.1.4.1.2.2.3"
VERIFICATION = "1.2.840.10008.1.1"

_PENDING = (0xFF00, 0xFF01)


def _transfer_syntaxes() -> list[str]:
    from pynetdicom import ALL_TRANSFER_SYNTAXES

    return list(ALL_TRANSFER_SYNTAXES)


def echo(calling_aet: str, node: Node, tls: TlsConfig | None, opts: NetOptions) -> float:
    """C-ECHO ``node``; returns the round-trip seconds or raises :class:`PacsError`."""
    ae = make_ae(calling_aet, opts)
    ae.add_requested_context(VERIFICATION)

    def once() -> float:
        t0 = time.perf_counter()
        assoc = associate(ae, node, tls)
        since = time.monotonic()
        try:
            status = assoc.send_c_echo()
            _check_status(status, node, "C-ECHO", assoc, since)
        finally:
            if assoc.is_established:
                assoc.release()
        return time.perf_counter() - t0

    return with_retries(f"C-ECHO {node}", once, opts)


def _aborted(assoc: Any, wait_s: float = 1.0) -> bool:
    """True when the peer aborted ``assoc`` (the flag is set by the association thread, a moment
    after the DIMSE layer has handed back its empty response)."""
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if assoc.is_aborted:
            return True
        time.sleep(0.02)
    return bool(assoc.is_aborted)


def _check_status(
    status: Dataset, node: Node, op: str, assoc: Any = None, since: float | None = None
) -> int:
    """The DIMSE status code, or a :class:`PacsError` for a failure, an abort or a timeout.

    ``since`` is when we started waiting for this response (``time.monotonic()``): an empty
    response after (nearly) the whole DIMSE timeout is our timeout, not the peer's abort.
    """
    if not status or "Status" not in status:
        timeout = float(getattr(getattr(assoc, "ae", None), "dimse_timeout", 0) or 0)
        timed_out = since is not None and timeout > 0 and time.monotonic() - since >= 0.9 * timeout
        if assoc is not None and not timed_out and _aborted(assoc):
            raise PacsError(
                f"{node} aborted the association during {op} (a PACS does this when it does not "
                f"know our calling AE title {assoc.requestor.ae_title!r} or does not allow {op} "
                "from it)"
            )
        raise PacsError(f"{node}: no {op} response within the timeout", transient=True)
    code = int(status.Status)
    if code not in (0x0000, *_PENDING) and not 0xB000 <= code <= 0xBFFF:
        comment = str(status.get("ErrorComment", "")).strip()
        raise PacsError(
            f"{node}: {op} failed with status 0x{code:04X}{': ' + comment if comment else ''}"
        )
    return code


# -- C-FIND ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class StudyQuery:
    """Study-level matching keys (empty = any). ``date`` is ``YYYYMMDD`` or a ``A-B`` range."""

    patient_id: str = ""
    study_uid: str = ""
    accession: str = ""
    date: str = ""
    modality: str = ""

    def check(self) -> StudyQuery:
        import re

        if self.date and not re.match(r"^(\d{8})?(-(\d{8})?)?$", self.date):
            raise ConfigError(
                f"--date must be YYYYMMDD, YYYYMMDD-YYYYMMDD, -YYYYMMDD or YYYYMMDD-; found "
                f"{self.date!r}"
            )
        if self.study_uid and not is_uid(self.study_uid):
            raise ConfigError(
                f"--study must be a DICOM UID (digits and dots), found {self.study_uid!r}"
            )
        if not any((self.patient_id, self.study_uid, self.accession, self.date, self.modality)):
            raise ConfigError(
                "give at least one of --patient-id, --study, --accession, --date, --modality "
                "(an open query would list the whole PACS)"
            )
        return self


@dataclass
class StudyRecord:
    """One study a query matched."""

    study_uid: str
    patient_id: str = ""
    study_date: str = ""
    accession: str = ""
    modalities: str = ""
    description: str = ""
    n_series: int | None = None
    n_instances: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _find_identifier(q: StudyQuery) -> Dataset:
    ds = Dataset()
    ds.QueryRetrieveLevel = "STUDY"
    ds.PatientID = q.patient_id
    ds.StudyInstanceUID = q.study_uid
    ds.AccessionNumber = q.accession
    ds.StudyDate = q.date
    ds.ModalitiesInStudy = q.modality
    ds.StudyDescription = ""
    ds.NumberOfStudyRelatedSeries = None
    ds.NumberOfStudyRelatedInstances = None
    return ds


def _multi(value: Any) -> str:
    if isinstance(value, MultiValue | list | tuple):
        return "\\".join(str(v) for v in value)
    return str(value or "")


def _int_or_none(ds: Dataset, kw: str) -> int | None:
    v = ds.get(kw)
    try:
        return int(v) if v not in (None, "") else None
    except (TypeError, ValueError):
        return None


def find_studies(
    calling_aet: str, node: Node, query: StudyQuery, tls: TlsConfig | None, opts: NetOptions
) -> list[StudyRecord]:
    """C-FIND (Study Root, STUDY level) at ``node``."""
    query.check()
    ae = make_ae(calling_aet, opts)
    ae.add_requested_context(STUDY_FIND)
    ident = _find_identifier(query)

    def once() -> list[StudyRecord]:
        assoc = associate(ae, node, tls)
        out: list[StudyRecord] = []
        since = time.monotonic()
        try:
            for status, found in assoc.send_c_find(ident, STUDY_FIND):
                code = _check_status(status, node, "C-FIND", assoc, since)
                since = time.monotonic()
                if code in _PENDING and found is not None:
                    uid = str(found.get("StudyInstanceUID", ""))
                    mods = found.get("ModalitiesInStudy", "")
                    out.append(
                        StudyRecord(
                            study_uid=uid,
                            patient_id=str(found.get("PatientID", "")),
                            study_date=str(found.get("StudyDate", "")),
                            accession=str(found.get("AccessionNumber", "")),
                            modalities=_multi(mods),
                            description=str(found.get("StudyDescription", "")),
                            n_series=_int_or_none(found, "NumberOfStudyRelatedSeries"),
                            n_instances=_int_or_none(found, "NumberOfStudyRelatedInstances"),
                        )
                    )
        finally:
            if assoc.is_established:
                assoc.release()
        return out

    return with_retries(f"C-FIND {node}", once, opts)


# -- storing received instances --------------------------------------------------------------
@dataclass
class Received:
    """Instances one retrieval wrote (thread-safe counters)."""

    root: Path
    files: list[Path] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, path: Path) -> None:
        with self.lock:
            self.files.append(path)


def instance_path(root: Path, ds: Dataset) -> Path:
    """``root/<study>/<series>/<sop>.dcm`` for a dataset whose three UIDs are valid."""
    study = ds.get("StudyInstanceUID")
    series = ds.get("SeriesInstanceUID")
    sop = ds.get("SOPInstanceUID")
    for kw, v in (
        ("StudyInstanceUID", study),
        ("SeriesInstanceUID", series),
        ("SOPInstanceUID", sop),
    ):
        if not is_uid(str(v) if v is not None else None):
            raise ValueError(f"{kw} missing or not a valid UID ({str(v)[:70]!r})")
    return inside(root, root / str(study) / str(series) / f"{sop}.dcm")


def store_handler(received: Received) -> Callable[[Any], int]:
    """A pynetdicom EVT_C_STORE handler that writes into ``received.root`` durably."""

    def handle(event: Any) -> int:
        try:
            ds = event.dataset
            path = instance_path(received.root, ds)
        except Exception as exc:  # malformed identifiers: refuse this instance, keep going
            with received.lock:
                received.rejected.append(str(exc))
            return 0xC210  # cannot understand
        atomic_write_bytes(path, event.encoded_dataset(), durable=True)
        received.add(path)
        return 0x0000

    return handle


# -- C-GET / C-MOVE --------------------------------------------------------------------------
@dataclass
class RetrieveResult:
    """Outcome of retrieving one study."""

    study_uid: str
    method: str
    status: str  # ok | partial | failed
    n_received: int = 0
    n_failed: int = 0
    n_expected: int | None = None
    attempts: int = 0
    seconds: float = 0.0
    reason: str = ""
    folder: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _retrieve_identifier(study_uid: str) -> Dataset:
    ds = Dataset()
    ds.QueryRetrieveLevel = "STUDY"
    ds.StudyInstanceUID = study_uid
    return ds


def _collect(
    responses: Iterable[tuple[Dataset, Any]], node: Node, op: str, assoc: Any
) -> tuple[int, int]:
    """Final (completed, failed) sub-operation counts of a C-GET/C-MOVE response stream."""
    completed = failed = 0
    last: Dataset | None = None
    since = time.monotonic()
    for status, _ident in responses:
        _check_status(status, node, op, assoc, since)
        since = time.monotonic()
        last = status
    if last is None:
        raise PacsError(f"{node}: no {op} response", transient=True)
    completed = int(last.get("NumberOfCompletedSuboperations", 0) or 0)
    failed = int(last.get("NumberOfFailedSuboperations", 0) or 0)
    code = int(last.Status)
    if code not in (0x0000,) and not 0xB000 <= code <= 0xBFFF:
        raise PacsError(f"{node}: {op} ended with status 0x{code:04X}")
    return completed, failed


def get_study(
    calling_aet: str,
    node: Node,
    study_uid: str,
    out_root: Path,
    tls: TlsConfig | None,
    opts: NetOptions,
) -> tuple[int, int, Received]:
    """C-GET one study into ``out_root``; returns (completed, failed, received)."""
    from pynetdicom import build_role, evt

    ae = make_ae(calling_aet, opts)
    ae.add_requested_context(STUDY_GET)
    for sop in CT_STORAGE:
        ae.add_requested_context(sop, _transfer_syntaxes())
    roles = [build_role(sop, scp_role=True) for sop in CT_STORAGE]
    received = Received(out_root)
    handlers = [(evt.EVT_C_STORE, store_handler(received))]
    assoc = associate(ae, node, tls, ext_neg=roles, evt_handlers=handlers)
    try:
        completed, failed = _collect(
            assoc.send_c_get(_retrieve_identifier(study_uid), STUDY_GET), node, "C-GET", assoc
        )
    finally:
        if assoc.is_established:
            assoc.release()
    return completed, failed, received


def move_study(
    calling_aet: str,
    node: Node,
    study_uid: str,
    out_root: Path,
    tls: TlsConfig | None,
    opts: NetOptions,
    listen: tuple[str, int],
) -> tuple[int, int, Received]:
    """C-MOVE one study to our own temporary C-STORE SCP on ``listen`` (host, port).

    The PACS must know ``calling_aet`` as a modality at that host and port (C-MOVE sends to a
    configured destination, not back down the same connection).
    """
    from pynetdicom import evt

    received = Received(out_root)
    scp = make_ae(calling_aet, opts)
    for sop in CT_STORAGE:
        scp.add_supported_context(sop, _transfer_syntaxes())
    try:
        server = scp.start_server(
            listen,
            block=False,
            evt_handlers=[(evt.EVT_C_STORE, store_handler(received))],
            ssl_context=tls.server_context() if tls is not None and tls.cert else None,
        )
    except OSError as exc:
        raise PacsError(f"cannot listen on {listen[0]}:{listen[1]} for C-MOVE ({exc})") from exc
    try:
        ae = make_ae(calling_aet, opts)
        ae.add_requested_context(STUDY_MOVE)
        assoc = associate(ae, node, tls)
        try:
            completed, failed = _collect(
                assoc.send_c_move(_retrieve_identifier(study_uid), calling_aet, STUDY_MOVE),
                node,
                "C-MOVE",
                assoc,
            )
        finally:
            if assoc.is_established:
                assoc.release()
    finally:
        if server is not None:
            server.shutdown()
    return completed, failed, received


# -- C-STORE ---------------------------------------------------------------------------------
@dataclass
class StoreOutcome:
    """Result of storing one file."""

    path: Path
    sop_class_uid: str
    sop_instance_uid: str
    status: int | None  # DIMSE status; None when no response came back
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.status is not None and (self.status == 0 or 0xB000 <= self.status <= 0xBFFF)


def _store_one(assoc: Any, item: tuple[Path, str, str, str]) -> StoreOutcome:
    """C-STORE one file on an open association; the outcome names the status or the error."""
    path, sop_class, sop, _ts = item
    try:
        status = assoc.send_c_store(path)
    except (OSError, ValueError, RuntimeError) as exc:
        return StoreOutcome(path, sop_class, sop, None, str(exc))
    code = int(status.Status) if status and "Status" in status else None
    err = "" if code is not None else "no response (association aborted or timed out)"
    if code is not None and code != 0 and not 0xB000 <= code <= 0xBFFF:
        err = str(status.get("ErrorComment", "")).strip() or f"status 0x{code:04X}"
    return StoreOutcome(path, sop_class, sop, code, err)


def file_identity(path: Path) -> tuple[str, str, str]:
    """(SOPClassUID, SOPInstanceUID, TransferSyntaxUID) from a DICOM file's header."""
    import pydicom

    ds = pydicom.dcmread(path, stop_before_pixels=True)
    ts = str(ds.file_meta.get("TransferSyntaxUID", "1.2.840.10008.1.2"))
    return str(ds.SOPClassUID), str(ds.SOPInstanceUID), ts


def store_files(
    calling_aet: str,
    node: Node,
    files: list[tuple[Path, str, str, str]],
    tls: TlsConfig | None,
    opts: NetOptions,
    on_result: Callable[[StoreOutcome], None] | None = None,
) -> list[StoreOutcome]:
    """C-STORE ``files`` ((path, sop class, sop instance, transfer syntax)) over one association.

    An association that breaks mid-way is reopened and the instances not yet confirmed are
    resent, up to ``opts.retries`` times (resending is harmless: same SOP Instance UIDs).
    """
    if not files:
        return []
    ae = make_ae(calling_aet, opts)
    contexts: dict[str, set[str]] = {}
    for _p, sop_class, _sop, ts in files:
        contexts.setdefault(sop_class, set()).update(
            {ts, "1.2.840.10008.1.2.1", "1.2.840.10008.1.2"}
        )
    if len(contexts) > 128:
        raise PacsError("more than 128 SOP classes in one send")
    for sop_class, tss in contexts.items():
        ae.add_requested_context(sop_class, sorted(tss))
    done: dict[Path, StoreOutcome] = {}
    pending = list(files)
    attempt = 0
    while pending:
        try:
            assoc = associate(ae, node, tls)
        except PacsError as exc:
            if not exc.transient or attempt >= opts.retries:
                raise
            attempt += 1
            time.sleep(opts.backoff_s * (2 ** (attempt - 1)))
            continue
        broken = False
        try:
            for item in list(pending):
                outcome = _store_one(assoc, item)
                if outcome.status is None and not assoc.is_established:
                    broken = True
                    break
                done[outcome.path] = outcome
                pending.remove(item)
                if on_result:
                    on_result(outcome)
        finally:
            if assoc.is_established:
                assoc.release()
        if broken:
            if attempt >= opts.retries:
                for path, sop_class, sop, _ts in pending:
                    o = StoreOutcome(path, sop_class, sop, None, "association lost; retries spent")
                    done[path] = o
                    if on_result:
                        on_result(o)
                break
            attempt += 1
            log.warning(
                "%s: association lost; resending %d instance(s) (retry %d/%d)",
                node,
                len(pending),
                attempt,
                opts.retries,
            )
            time.sleep(opts.backoff_s * (2 ** (attempt - 1)))
    return [done[f[0]] for f in files if f[0] in done]
