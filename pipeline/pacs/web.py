"""DICOMweb: QIDO-RS (find), WADO-RS (retrieve a study), STOW-RS (store) via dicomweb-client.

The HTTP password is never a command-line argument: it comes from ``LDCT_DICOMWEB_PASSWORD``.
WADO-RS hands back parsed datasets, so retrieved instances are re-encoded (same UIDs, same
elements, explicit VR little endian or the transfer syntax the server sent) before the durable
write; DIMSE retrieval stores the peer's bytes as they came.
"""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.errors import ConfigError, PacsError
from pipeline.pacs.node import NetOptions
from pipeline.pacs.scu import Received, StoreOutcome, StudyQuery, StudyRecord, instance_path
from pipeline.utils.files import atomic_write_bytes

log = logging.getLogger(__name__)

PASSWORD_ENV = "LDCT_DICOMWEB_PASSWORD"


@dataclass(frozen=True)
class WebNode:
    """A DICOMweb service root (e.g. ``http://127.0.0.1:8042/dicom-web``) and its user."""

    url: str
    user: str = ""

    def __post_init__(self) -> None:
        if not self.url.startswith(("http://", "https://")):
            raise ConfigError(f"--dicomweb must be an http(s) URL, found {self.url!r}")

    def __str__(self) -> str:
        return self.url


def _client(node: WebNode, opts: NetOptions) -> Any:
    import requests
    from dicomweb_client.api import DICOMwebClient

    session = requests.Session()
    if node.user:
        password = os.environ.get(PASSWORD_ENV)
        if password is None:
            raise ConfigError(f"--web-user {node.user!r} needs the password in ${PASSWORD_ENV}")
        session.auth = (node.user, password)
    client = DICOMwebClient(url=node.url, session=session, timeout=opts.timeout_s)
    client.set_http_retry_params(
        retry=opts.retries > 0,
        max_attempts=opts.retries + 1,
        wait_exponential_multiplier=int(opts.backoff_s * 1000),
    )
    return client


def _http_error(node: WebNode, what: str, exc: Exception) -> PacsError:
    import requests

    if isinstance(exc, requests.HTTPError) and exc.response is not None:
        code = exc.response.status_code
        hint = {
            401: " (unauthorised: check --web-user and $" + PASSWORD_ENV + ")",
            403: " (forbidden)",
            404: " (not found: is DICOMweb enabled at this URL?)",
        }
        return PacsError(
            f"{node}: {what} failed: HTTP {code}{hint.get(code, '')}", transient=code >= 500
        )
    return PacsError(f"{node}: {what} failed ({exc})", transient=True)


def qido_studies(node: WebNode, query: StudyQuery, opts: NetOptions) -> list[StudyRecord]:
    """QIDO-RS study search with the same keys as C-FIND."""
    import requests

    query.check()
    filters = {
        k: v
        for k, v in (
            ("PatientID", query.patient_id),
            ("StudyInstanceUID", query.study_uid),
            ("AccessionNumber", query.accession),
            ("StudyDate", query.date),
            ("ModalitiesInStudy", query.modality),
        )
        if v
    }
    fields = [
        "StudyDescription",
        "NumberOfStudyRelatedSeries",
        "NumberOfStudyRelatedInstances",
        "ModalitiesInStudy",
        "PatientID",
        "StudyDate",
        "AccessionNumber",
    ]
    try:
        found = _client(node, opts).search_for_studies(
            search_filters=filters, fields=fields, get_remaining=False
        )
    except (requests.RequestException, OSError) as exc:
        raise _http_error(node, "QIDO-RS search", exc) from exc

    def val(d: dict[str, Any], tag: str) -> str:
        v = d.get(tag, {}).get("Value", [])
        return "\\".join(str(x) for x in v) if v else ""

    def num(d: dict[str, Any], tag: str) -> int | None:
        s = val(d, tag)
        return int(s) if s.isdigit() else None

    return [
        StudyRecord(
            study_uid=val(d, "0020000D"),
            patient_id=val(d, "00100020"),
            study_date=val(d, "00080020"),
            accession=val(d, "00080050"),
            modalities=val(d, "00080061"),
            description=val(d, "00081030"),
            n_series=num(d, "00201206"),
            n_instances=num(d, "00201208"),
        )
        for d in found
    ]


def wado_study(node: WebNode, study_uid: str, out_root: Path, opts: NetOptions) -> Received:
    """WADO-RS retrieve of one study into ``out_root`` (durable writes)."""
    import requests

    received = Received(out_root)
    try:
        for ds in _client(node, opts).iter_study(study_uid):
            try:
                path = instance_path(out_root, ds)
            except ValueError as exc:
                received.rejected.append(str(exc))
                continue
            buf = io.BytesIO()
            ds.save_as(buf, enforce_file_format=True)
            atomic_write_bytes(path, buf.getvalue(), durable=True)
            received.add(path)
    except (requests.RequestException, OSError) as exc:
        raise _http_error(node, f"WADO-RS retrieve of study {study_uid}", exc) from exc
    return received


def stow_files(
    node: WebNode,
    files: list[tuple[Path, str, str, str]],
    opts: NetOptions,
    on_result: Callable[[StoreOutcome], None] | None = None,
    batch: int = 16,
) -> list[StoreOutcome]:
    """STOW-RS ``files`` in batches; the per-instance result comes from the server's response
    (ReferencedSOPSequence = stored, FailedSOPSequence = failed with its FailureReason)."""
    import pydicom
    import requests

    client = _client(node, opts)
    out: list[StoreOutcome] = []
    for i in range(0, len(files), batch):
        chunk = files[i : i + batch]
        datasets = [pydicom.dcmread(p) for p, *_ in chunk]
        try:
            resp = client.store_instances(datasets)
        except (requests.RequestException, OSError) as exc:
            err = str(_http_error(node, "STOW-RS", exc))
            results = [StoreOutcome(p, c, s, None, err) for p, c, s, _t in chunk]
        else:
            ok = {str(it.ReferencedSOPInstanceUID) for it in resp.get("ReferencedSOPSequence", [])}
            failed = {
                str(it.ReferencedSOPInstanceUID): int(it.get("FailureReason", 0xC000))
                for it in resp.get("FailedSOPSequence", [])
            }
            results = []
            for p, c, s, _t in chunk:
                if s in ok:
                    results.append(StoreOutcome(p, c, s, 0))
                else:
                    code = failed.get(s, 0xC000)
                    results.append(StoreOutcome(p, c, s, code, f"STOW-RS failure 0x{code:04X}"))
        for r in results:
            out.append(r)
            if on_result:
                on_result(r)
    return out
