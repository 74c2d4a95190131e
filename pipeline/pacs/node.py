"""DICOM peers, TLS contexts and association setup with retries and clear errors.

A peer is written ``AET@host:port`` (e.g. ``ORTHANC@127.0.0.1:4242``). Every failure to associate
becomes a :class:`pipeline.errors.PacsError` (exit code 5) that says what the peer answered:
association rejected (and why: unknown calling AE title, unknown called AE title, no reason, local
limit), no answer within the timeout, connection refused, TLS handshake failure.
"""

from __future__ import annotations

import logging
import re
import ssl
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from pipeline.errors import ConfigError, PacsError

if TYPE_CHECKING:
    from pynetdicom import AE
    from pynetdicom.association import Association

log = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_AET = "LDCT"
_AET_RE = re.compile(r"^[ -~]{1,16}$")  # PS3.5: at most 16 characters of the default repertoire

#: (result source, diagnostic) -> what it means, from PS3.8 9.3.4 (A-ASSOCIATE-RJ).
_REJECT_REASONS = {
    (1, 1): "no reason given",
    (1, 2): "application context name not supported",
    (1, 3): "calling AE title not recognised (the peer must list this AE title)",
    (1, 7): "called AE title not recognised (check the peer's AE title)",
    (2, 1): "no reason given (ACSE)",
    (2, 2): "protocol version not supported",
    (3, 1): "temporary congestion",
    (3, 2): "local limit exceeded (the peer is busy or its queue is full)",
}


def check_aet(aet: str, what: str = "AE title") -> str:
    """``aet`` if it is a valid AE title (1-16 printable ASCII characters, not all spaces)."""
    if not _AET_RE.match(aet) or not aet.strip() or "\\" in aet:
        raise ConfigError(f"{what} must be 1-16 printable ASCII characters, found {aet!r}")
    return aet


@dataclass(frozen=True)
class Node:
    """A DICOM peer: AE title, host and port."""

    aet: str
    host: str
    port: int

    @classmethod
    def parse(cls, text: str, what: str = "peer") -> Node:
        """Parse ``AET@host:port``."""
        m = re.match(r"^(?P<aet>[^@]+)@(?P<host>[^:@]+|\[[0-9a-fA-F:]+\]):(?P<port>[0-9]+)$", text)
        if not m:
            raise ConfigError(
                f"{what} must be AET@host:port (e.g. ORTHANC@127.0.0.1:4242), found {text!r}"
            )
        port = int(m["port"])
        if not 1 <= port <= 65535:
            raise ConfigError(f"{what} port must be 1-65535, found {port}")
        return cls(check_aet(m["aet"], f"{what} AE title"), m["host"].strip("[]"), port)

    def __str__(self) -> str:
        return f"{self.aet}@{self.host}:{self.port}"


@dataclass(frozen=True)
class TlsConfig:
    """TLS for DICOM associations (PS3.15 B.1 "Basic TLS Secure Transport Connection Profile").

    ``ca`` verifies the peer's certificate; ``cert``/``key`` are our own (required for a server,
    optional for a client unless the peer asks for client certificates).
    """

    ca: Path | None = None
    cert: Path | None = None
    key: Path | None = None
    require_client_cert: bool = False

    @property
    def enabled(self) -> bool:
        return any(p is not None for p in (self.ca, self.cert, self.key))

    def _load(self, ctx: ssl.SSLContext) -> ssl.SSLContext:
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        try:
            if self.cert is not None:
                ctx.load_cert_chain(str(self.cert), str(self.key) if self.key else None)
            if self.ca is not None:
                ctx.load_verify_locations(cafile=str(self.ca))
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"TLS certificate/key could not be loaded: {exc}") from exc
        return ctx

    def client_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
        ctx.check_hostname = False  # DICOM peers are addressed by IP; the CA pins the peer
        return self._load(ctx)

    def server_context(self) -> ssl.SSLContext:
        if self.cert is None or self.key is None:
            raise ConfigError("a TLS server needs --tls-cert and --tls-key")
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.verify_mode = ssl.CERT_REQUIRED if self.require_client_cert else ssl.CERT_NONE
        return self._load(ctx)


@dataclass(frozen=True)
class NetOptions:
    """Timeouts (seconds) and retries of one network client."""

    timeout_s: float = 30.0
    retries: int = 2
    backoff_s: float = 1.0


def quiet_pynetdicom() -> None:
    """pynetdicom logs every PDU at INFO and its own view of each failure at ERROR; our messages
    say the same in one line. Its log is shown only with ``-vv`` (root logger at DEBUG)."""
    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        logging.getLogger("pynetdicom").setLevel(logging.CRITICAL)


def make_ae(calling_aet: str, opts: NetOptions) -> AE:
    from pynetdicom import AE

    quiet_pynetdicom()
    ae = AE(ae_title=check_aet(calling_aet, "calling AE title"))
    ae.acse_timeout = opts.timeout_s
    ae.dimse_timeout = opts.timeout_s
    ae.network_timeout = opts.timeout_s
    ae.connection_timeout = opts.timeout_s
    return ae


def associate(
    ae: AE,
    node: Node,
    tls: TlsConfig | None = None,
    ext_neg: Sequence[Any] | None = None,
    evt_handlers: Iterable[Any] | None = None,
) -> Association:
    """Open an association to ``node`` or raise a :class:`PacsError` saying why not."""
    kwargs: dict[str, Any] = {"ae_title": node.aet}
    if ext_neg:
        kwargs["ext_neg"] = list(ext_neg)
    if evt_handlers:
        kwargs["evt_handlers"] = list(evt_handlers)
    if tls is not None and tls.enabled:
        kwargs["tls_args"] = (tls.client_context(), None)
    t0 = time.monotonic()
    try:
        assoc = ae.associate(node.host, node.port, **kwargs)
    except (OSError, ssl.SSLError) as exc:
        raise PacsError(f"{node}: connection failed ({exc})", transient=True) from exc
    if assoc.is_established:
        return assoc
    if assoc.is_rejected:
        rsp = assoc.acceptor.primitive
        result = getattr(rsp, "result", None)
        source = getattr(rsp, "result_source", None)
        diag = getattr(rsp, "diagnostic", None)
        why = _REJECT_REASONS.get(
            (int(source or 0), int(diag or 0)), f"source {source} diagnostic {diag}"
        )
        kind = "permanently" if result == 1 else "transiently"
        raise PacsError(
            f"{node} {kind} rejected the association from calling AE {ae.ae_title!r}: {why}",
            transient=result == 2,
        )
    waited = time.monotonic() - t0
    if waited >= min(ae.acse_timeout or 0, ae.connection_timeout or 0) * 0.9 > 0:
        raise PacsError(f"{node}: no answer within {waited:.0f} s (timeout)", transient=True)
    raise PacsError(
        f"{node}: association failed (connection refused, aborted or TLS handshake failed; "
        "is the peer running and the port right?)",
        transient=True,
    )


def with_retries(
    what: str, fn: Callable[[], T], opts: NetOptions, on_retry: Callable[[str], None] | None = None
) -> T:
    """Call ``fn``; retry transient :class:`PacsError` up to ``opts.retries`` times with backoff."""
    attempt = 0
    while True:
        try:
            return fn()
        except PacsError as exc:
            if not exc.transient or attempt >= opts.retries:
                raise
            attempt += 1
            delay = opts.backoff_s * (2 ** (attempt - 1))
            msg = f"{what}: {exc}; retry {attempt}/{opts.retries} in {delay:.0f} s"
            log.warning("%s", msg)
            if on_retry:
                on_retry(msg)
            time.sleep(delay)
