"""``ldct pacs echo|find|get|send|status``: a PACS as the source and destination of denoising.

Exit codes: 0 ok; 1 some studies/instances failed (see retrieve.json / send-manifest.json);
2 bad options; 5 the peer could not be reached or refused the association (the message says why).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from pipeline.pacs.node import NetOptions, Node, TlsConfig
    from pipeline.pacs.scu import StudyQuery, StudyRecord
    from pipeline.pacs.web import WebNode

pacs_app = typer.Typer(
    help="Query/retrieve studies from a PACS (DIMSE or DICOMweb) and send derived series back.",
    no_args_is_help=True,
)

_PACS_HELP = "The PACS as AET@host:port (DIMSE), e.g. ORTHANC@127.0.0.1:4242."
_WEB_HELP = "A DICOMweb root URL instead of DIMSE, e.g. http://127.0.0.1:8042/dicom-web."
_USER_HELP = "DICOMweb HTTP user; the password comes from $LDCT_DICOMWEB_PASSWORD."


def register(app: typer.Typer) -> None:
    """Add the ``pacs`` command group to the CLI."""
    app.add_typer(pacs_app, name="pacs")


def _net(timeout: float, retries: int) -> NetOptions:
    from pipeline.errors import ConfigError
    from pipeline.pacs.node import NetOptions

    if timeout <= 0 or retries < 0:
        raise ConfigError(f"--timeout must be > 0 and --retries >= 0, found {timeout}, {retries}")
    return NetOptions(timeout_s=timeout, retries=retries)


def _tls(ca: Path | None, cert: Path | None, key: Path | None) -> TlsConfig:
    from pipeline.pacs.node import TlsConfig

    return TlsConfig(ca=ca, cert=cert, key=key)


def _source(
    pacs: str | None, dicomweb: str | None, user: str
) -> tuple[Node | None, WebNode | None]:
    from pipeline.errors import ConfigError
    from pipeline.pacs.node import Node
    from pipeline.pacs.web import WebNode

    if (pacs is None) == (dicomweb is None):
        raise ConfigError("give exactly one of --pacs AET@host:port or --dicomweb URL")
    if pacs is not None:
        return Node.parse(pacs, "--pacs"), None
    assert dicomweb is not None
    return None, WebNode(dicomweb.rstrip("/"), user)


_AET = typer.Option("LDCT", "--aet", help="Our (calling) AE title; the PACS must know it.")
_TIMEOUT = typer.Option(30.0, "--timeout", help="Seconds to wait for the peer (each step).")
_RETRIES = typer.Option(2, "--retries", help="Retries of a transient failure (backoff 1, 2, 4 s).")
_CA = typer.Option(None, "--tls-ca", help="TLS: CA certificate that signed the peer's.")
_CERT = typer.Option(None, "--tls-cert", help="TLS: our certificate (PEM).")
_KEY = typer.Option(None, "--tls-key", help="TLS: our private key (PEM).")


@pacs_app.command("echo")
def echo_cmd(
    pacs: str = typer.Option(..., "--pacs", help=_PACS_HELP),
    aet: str = _AET,
    timeout: float = _TIMEOUT,
    retries: int = _RETRIES,
    tls_ca: Path | None = _CA,
    tls_cert: Path | None = _CERT,
    tls_key: Path | None = _KEY,
) -> int:
    """C-ECHO the PACS (checks address, port, AE titles and TLS)."""
    from pipeline.pacs.node import Node
    from pipeline.pacs.scu import echo

    node = Node.parse(pacs, "--pacs")
    rtt = echo(aet, node, _tls(tls_ca, tls_cert, tls_key), _net(timeout, retries))
    typer.echo(f"{node}: C-ECHO ok ({rtt * 1000:.0f} ms, calling AE {aet})")
    return 0


def _query(patient_id: str, study: str, accession: str, date: str, modality: str) -> StudyQuery:
    from pipeline.pacs.scu import StudyQuery

    return StudyQuery(patient_id, study, accession, date, modality).check()


def _find(
    pacs: str | None,
    dicomweb: str | None,
    user: str,
    aet: str,
    query: StudyQuery,
    tls: TlsConfig,
    net: NetOptions,
) -> list[StudyRecord]:
    from pipeline.pacs.scu import find_studies
    from pipeline.pacs.web import qido_studies

    node, web = _source(pacs, dicomweb, user)
    if node is not None:
        return find_studies(aet, node, query, tls, net)
    assert web is not None
    return qido_studies(web, query, net)


@pacs_app.command("find")
def find_cmd(
    pacs: str | None = typer.Option(None, "--pacs", help=_PACS_HELP),
    dicomweb: str | None = typer.Option(None, "--dicomweb", help=_WEB_HELP),
    web_user: str = typer.Option("", "--web-user", help=_USER_HELP),
    patient_id: str = typer.Option("", "--patient-id", help="PatientID (wildcards * ? allowed)."),
    study: str = typer.Option("", "--study", help="StudyInstanceUID."),
    accession: str = typer.Option("", "--accession", help="AccessionNumber."),
    date: str = typer.Option("", "--date", help="StudyDate YYYYMMDD or range A-B, -B, A-."),
    modality: str = typer.Option("", "--modality", help="A modality in the study, e.g. CT."),
    as_json: bool = typer.Option(False, "--json", help="Print the matches as JSON."),
    aet: str = _AET,
    timeout: float = _TIMEOUT,
    retries: int = _RETRIES,
    tls_ca: Path | None = _CA,
    tls_cert: Path | None = _CERT,
    tls_key: Path | None = _KEY,
) -> int:
    """List the studies matching the keys (C-FIND study level, or QIDO-RS)."""
    query = _query(patient_id, study, accession, date, modality)
    found = _find(
        pacs,
        dicomweb,
        web_user,
        aet,
        query,
        _tls(tls_ca, tls_cert, tls_key),
        _net(timeout, retries),
    )
    if as_json:
        typer.echo(json.dumps([s.as_dict() for s in found], indent=1))
        return 0
    typer.echo(f"{len(found)} stud{'y' if len(found) == 1 else 'ies'} matched")
    for s in found:
        n = (
            f"{s.n_series if s.n_series is not None else '?'} series, "
            f"{s.n_instances if s.n_instances is not None else '?'} instances"
        )
        typer.echo(
            f"  {s.study_uid}  {s.study_date or '-':<8}  {s.modalities or '-':<6}  "
            f"patient {s.patient_id or '-'}  acc {s.accession or '-'}  {n}  "
            f"{s.description!r}"
        )
    return 0


@pacs_app.command("get")
def get_cmd(
    out: Path = typer.Option(..., "--out", "-o", help="Local folder the studies land in."),
    pacs: str | None = typer.Option(None, "--pacs", help=_PACS_HELP),
    dicomweb: str | None = typer.Option(None, "--dicomweb", help=_WEB_HELP),
    web_user: str = typer.Option("", "--web-user", help=_USER_HELP),
    method: str | None = typer.Option(
        None,
        "--method",
        help="get (C-GET, default for --pacs) | move (C-MOVE to our own SCP) | "
        "wado (default for --dicomweb).",
    ),
    move_port: int = typer.Option(
        0,
        "--move-port",
        help="C-MOVE: port our temporary SCP "
        "listens on (the PACS must list --aet at this host/port).",
    ),
    move_host: str = typer.Option("127.0.0.1", "--move-host", help="C-MOVE: address to bind."),
    patient_id: str = typer.Option("", "--patient-id", help="PatientID."),
    study: list[str] = typer.Option([], "--study", help="StudyInstanceUID (repeatable)."),
    accession: str = typer.Option("", "--accession", help="AccessionNumber."),
    date: str = typer.Option("", "--date", help="StudyDate YYYYMMDD or range."),
    modality: str = typer.Option("", "--modality", help="A modality in the study, e.g. CT."),
    aet: str = _AET,
    timeout: float = _TIMEOUT,
    retries: int = _RETRIES,
    tls_ca: Path | None = _CA,
    tls_cert: Path | None = _CERT,
    tls_key: Path | None = _KEY,
) -> int:
    """Retrieve matching studies into OUT/<study>/<series>/<sop>.dcm (what `ldct denoise` reads).

    The studies are found first (C-FIND / QIDO-RS with the keys given, or exactly the --study
    UIDs), then retrieved one by one with per-study progress, retries and a record in
    OUT/retrieve.json. Exit 1 when a study came back incomplete.
    """
    from pipeline.errors import ConfigError, ExitCode
    from pipeline.pacs.retrieve import retrieve_studies

    node, web = _source(pacs, dicomweb, web_user)
    method = method or ("get" if node is not None else "wado")
    tls = _tls(tls_ca, tls_cert, tls_key)
    net = _net(timeout, retries)
    if method == "move" and not 1 <= move_port <= 65535:
        raise ConfigError("--method move needs --move-port 1-65535")
    expected: dict[str, int | None] = {}
    if len(study) == 1 and not any((patient_id, accession, date, modality)):
        uids = list(study)
        found = _find(pacs, dicomweb, web_user, aet, _query("", study[0], "", "", ""), tls, net)
        expected = {s.study_uid: s.n_instances for s in found}
        if not found:
            raise ConfigError(f"study {study[0]} not found at {node or web}")
    else:
        found = []
        keys = list(study) or [""]
        for uid in keys:
            q = _query(patient_id, uid, accession, date, modality)
            found.extend(_find(pacs, dicomweb, web_user, aet, q, tls, net))
        uids = list(dict.fromkeys(s.study_uid for s in found))
        expected = {s.study_uid: s.n_instances for s in found}
    if not uids:
        typer.echo("no study matched; nothing retrieved")
        return ExitCode.OK
    typer.echo(
        f"retrieving {len(uids)} stud{'y' if len(uids) == 1 else 'ies'} with "
        f"{method.upper()} into {out}"
    )
    results = retrieve_studies(
        uids,
        out.resolve(),
        method=method,
        calling_aet=aet,
        node=node,
        web=web,
        tls=tls,
        opts=net,
        listen=(move_host, move_port) if method == "move" else None,
        expected=expected,
        echo=typer.echo,
    )
    bad = [r for r in results if r.status != "ok"]
    typer.echo(
        f"{len(results) - len(bad)} ok, {len(bad)} incomplete/failed; "
        f"record: {out / 'retrieve.json'}; next: ldct denoise {out} --out OUT"
    )
    if bad and all("rejected the association" in r.reason for r in bad):
        return ExitCode.NETWORK
    return ExitCode.PARTIAL_FAILURE if bad else ExitCode.OK


@pacs_app.command("send")
def send_cmd(
    out: Path = typer.Argument(..., help="Output folder of `ldct denoise` (its manifest.json)."),
    to: str | None = typer.Option(None, "--to", help="Destination AET@host:port (C-STORE)."),
    dicomweb: str | None = typer.Option(
        None, "--dicomweb", help="Destination DICOMweb root (STOW-RS) instead of --to."
    ),
    web_user: str = typer.Option("", "--web-user", help=_USER_HELP),
    resend: bool = typer.Option(
        False, "--resend", help="Send again what the send manifest records as already sent."
    ),
    aet: str = _AET,
    timeout: float = _TIMEOUT,
    retries: int = _RETRIES,
    tls_ca: Path | None = _CA,
    tls_cert: Path | None = _CERT,
    tls_key: Path | None = _KEY,
) -> int:
    """Send the derived series listed in OUT/manifest.json; results in OUT/send-manifest.json.

    Idempotent: derived UIDs are deterministic, so a resend adds no instance at the PACS.
    Exit 1 when an instance failed (the send manifest says which and why).
    """
    from pipeline.pacs.send import send_outputs

    node, web = _source(to, dicomweb, web_user)
    summary = send_outputs(
        out.resolve(),
        calling_aet=aet,
        node=node,
        web=web,
        tls=_tls(tls_ca, tls_cert, tls_key),
        opts=_net(timeout, retries),
        resend=resend,
        echo=typer.echo,
    )
    typer.echo(summary.text)
    return summary.exit_code


@pacs_app.command("status")
def status_cmd(
    spool: Path = typer.Option(..., "--spool", help="The spool folder of `ldct serve`."),
    as_json: bool = typer.Option(False, "--json", help="Print the status as JSON."),
) -> int:
    """Health of an `ldct serve` spool: running or not, heartbeat, queue and failure counts.

    Exit 0 when the service is running (heartbeat fresh), 1 when it is not.
    """
    from pipeline.errors import ExitCode
    from pipeline.pacs.service import read_status

    st = read_status(spool)
    svc = st["service"]
    running = bool(svc and svc.get("running"))
    if as_json:
        typer.echo(json.dumps(st, indent=1))
        return ExitCode.OK if running else ExitCode.PARTIAL_FAILURE
    if svc is None:
        typer.echo("service: never started on this spool")
    else:
        typer.echo(
            f"service: {'running' if running else 'NOT running'} (pid {svc['pid']}, "
            f"{svc['aet']} on {svc['listen'] or '-'}, heartbeat {svc['heartbeat_age_s']} s "
            f"ago, destination {svc['destination'] or '-'})"
        )
        typer.echo("stats:   " + ", ".join(f"{k} {v}" for k, v in svc["stats"].items()))
        for name, what in sorted(svc.get("workers", {}).items()):
            typer.echo(f"worker:  {name}: {what}")
    typer.echo("spool:   " + ", ".join(f"{k} {v}" for k, v in st["counts"].items()))
    return ExitCode.OK if running else ExitCode.PARTIAL_FAILURE
