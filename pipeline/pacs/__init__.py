"""DICOM networking: query/retrieve from a PACS, send derived series back, and ``ldct serve``.

Module map:

* ``node`` -- peers (``AET@host:port``), TLS contexts, association setup.
* ``scu`` -- C-ECHO, C-FIND, C-GET, C-MOVE (to our own temporary SCP), C-STORE.
* ``web`` -- the same over DICOMweb (QIDO-RS, WADO-RS, STOW-RS).
* ``retrieve`` -- studies into a local tree; ``send`` -- push the series a denoise manifest
  lists, with a per-instance send manifest.
* ``spool``, ``service``, ``worker`` -- the durable auto-denoise service; ``durable`` --
  durable renames and path checks.

The names below are the stage's public face, imported lazily on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pipeline._lazy import attach

if TYPE_CHECKING:
    from pipeline.pacs.node import NetOptions, Node, TlsConfig
    from pipeline.pacs.retrieve import retrieve_studies
    from pipeline.pacs.scu import StudyQuery, StudyRecord, echo, find_studies
    from pipeline.pacs.send import send_outputs
    from pipeline.pacs.service import ServeConfig, Service, read_status
    from pipeline.pacs.spool import Spool
    from pipeline.pacs.web import WebNode, qido_studies

_EXPORTS: dict[str, tuple[str, ...]] = {
    "node": ("NetOptions", "Node", "TlsConfig"),
    "scu": ("StudyQuery", "StudyRecord", "echo", "find_studies"),
    "web": ("WebNode", "qido_studies"),
    "retrieve": ("retrieve_studies",),
    "send": ("send_outputs",),
    "service": ("ServeConfig", "Service", "read_status"),
    "spool": ("Spool",),
}

__all__ = [
    "NetOptions",
    "Node",
    "ServeConfig",
    "Service",
    "Spool",
    "StudyQuery",
    "StudyRecord",
    "TlsConfig",
    "WebNode",
    "echo",
    "find_studies",
    "qido_studies",
    "read_status",
    "retrieve_studies",
    "send_outputs",
]

if not TYPE_CHECKING:
    __getattr__, __dir__ = attach(__name__, globals(), _EXPORTS)
