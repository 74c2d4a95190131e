"""``ldct serve``: receive studies (C-STORE SCP), denoise each, send the derived series on."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    """Add ``serve`` to the CLI."""
    app.command("serve")(serve)


def serve(
    spool: Path = typer.Option(
        ..., "--spool", help="Spool folder (created; all writes stay in it)."
    ),
    dest: str | None = typer.Option(None, "--dest", help="Where derived series go: AET@host:port."),
    allow_aet: list[str] = typer.Option(
        [],
        "--allow-aet",
        help="Calling AE title allowed to send (repeatable; required with the SCP).",
    ),
    allow_host: list[str] = typer.Option(
        [],
        "--allow-host",
        help="Peer IP address allowed to send (repeatable; default any that can reach --host).",
    ),
    aet: str = typer.Option("LDCT", "--aet", help="Our AE title (also the calling AE for sends)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (0.0.0.0: all)."),
    port: int = typer.Option(11112, "--port", help="DICOM port to listen on."),
    quiet: float = typer.Option(
        10.0, "--quiet", help="Seconds without a new instance after which a study is complete."
    ),
    max_queue: int = typer.Option(
        20,
        "--max-queue",
        help="Studies waiting before new "
        "associations are refused (transient, local limit exceeded).",
    ),
    max_associations: int = typer.Option(4, "--max-associations", help="Concurrent senders."),
    workers: int = typer.Option(
        1, "--workers", help="Worker threads denoising queued studies (0: receive only)."
    ),
    no_scp: bool = typer.Option(
        False,
        "--no-scp",
        help="Only drain the spool (an extra worker process beside a running `ldct serve`).",
    ),
    model: str | None = typer.Option(None, "--model", "-m", help="Checkpoint (default: bundled)."),
    config: Path | None = typer.Option(
        None,
        "--config",
        "-c",
        help="Denoise YAML, as for `ldct denoise` (selection rules, batch size...).",
    ),
    overrides: list[str] = typer.Option([], "--set", help="Denoise config override (repeatable)."),
    send_attempts: int = typer.Option(
        5, "--send-attempts", help="Sends of a study before it goes to failed/."
    ),
    timeout: float = typer.Option(30.0, "--timeout", help="Network timeout (s)."),
    log_phi: bool = typer.Option(False, "--log-phi", help="Log Study UIDs (default: hashes)."),
    tls_cert: Path | None = typer.Option(None, "--tls-cert", help="TLS: our certificate (PEM)."),
    tls_key: Path | None = typer.Option(None, "--tls-key", help="TLS: our private key (PEM)."),
    tls_ca: Path | None = typer.Option(
        None, "--tls-ca", help="TLS: CA of client certificates (then required)."
    ),
    dest_tls_ca: Path | None = typer.Option(None, "--dest-tls-ca", help="TLS to --dest: its CA."),
    dest_dicomweb: str | None = typer.Option(
        None, "--dest-dicomweb", help="Send with STOW-RS to this DICOMweb root instead of --dest."
    ),
    dest_web_user: str = typer.Option(
        "", "--dest-web-user", help="DICOMweb user; password from $LDCT_DICOMWEB_PASSWORD."
    ),
) -> int:
    """Run a durable DICOM node: C-STORE in -> spool -> denoise -> C-STORE to --dest.

    An instance is acknowledged only after it is on disk (fsync + rename); a study is queued after
    --quiet seconds without new instances; queued studies survive kill -9 and restarts. Stops
    gracefully on SIGTERM/SIGINT (finishes the current job). `ldct pacs status --spool` reports.
    """
    from pipeline.pacs.node import NetOptions, Node, TlsConfig
    from pipeline.pacs.service import ServeConfig, Service
    from pipeline.pacs.web import WebNode

    tls = TlsConfig(ca=tls_ca, cert=tls_cert, key=tls_key, require_client_cert=tls_ca is not None)
    cfg = ServeConfig(
        spool=spool,
        destination=Node.parse(dest, "--dest") if dest else None,
        allowed_aets=list(allow_aet),
        aet=aet,
        host=host,
        port=port,
        allowed_hosts=list(allow_host),
        quiet_s=quiet,
        max_queue=max_queue,
        max_associations=max_associations,
        workers=workers,
        scp=not no_scp,
        tls=tls if tls.enabled else None,
        dest_tls=TlsConfig(ca=dest_tls_ca) if dest_tls_ca else None,
        net=NetOptions(timeout_s=timeout),
        send_attempts=send_attempts,
        log_phi=log_phi,
        denoise_config=config,
        denoise_overrides=list(overrides),
        model=model,
        destination_web=WebNode(dest_dicomweb.rstrip("/"), dest_web_user)
        if dest_dicomweb
        else None,
    )
    return Service(cfg, echo=typer.echo).run()
