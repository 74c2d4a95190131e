"""Keyed pseudonyms for patient identifiers and UIDs, applied where an identifier is produced.

One :class:`Pseudonymizer` is made by the CLI (``ldct qa|evaluate|report --pseudonymize``) and
handed to the evaluation and the report, which call it when they build a table row, a
summary.json record, a log line, a page, a file name. Nothing is replaced in finished text.

* A patient key (PatientID, or the dataset folder name) becomes ``P-<10 hex>``: the first 40
  bits of HMAC-SHA256(key, patient key), the same pseudonym as ``output.deidentify`` gives the
  de-identified derived series (:mod:`pipeline.io.deid`).
* A Study/Series/SOP Instance UID becomes ``2.25.<int>``, the UID :class:`Deidentifier` gives it
  with the same key: ``derive_uid("deid", HMAC-SHA256(key, "ldct deid uid"), uid)``, a valid
  DICOM UID of at most 41 characters.

The key comes from ``--key`` or ``LDCT_PSEUDONYM_KEY``: the same key gives the same pseudonyms
on every run (whoever holds it can link runs, nobody can reverse them without it). Without a key
a random one is drawn per run and never written anywhere.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
from collections.abc import Sequence
from typing import Any

from pipeline.io.deid import Deidentifier

ENV_KEY = "LDCT_PSEUDONYM_KEY"
#: what a pseudonymised summary.json records instead of an input path (paths can name patients)
WITHHELD = "withheld (pseudonymised run)"
METHOD = (
    "patient keys: P- + 10 hex digits of HMAC-SHA256(key, key text); Study/Series/SOP Instance "
    "UIDs: 2.25.<int> as output.deidentify derives them with the same key"
)


class Pseudonymizer:
    """Maps patient keys to ``P-<10 hex>`` and UIDs to ``2.25.<int>``; identity when disabled."""

    def __init__(self, enabled: bool, key: str | None = None) -> None:
        self.enabled = enabled
        key = key or os.environ.get(ENV_KEY)
        self.key_source = "given" if key else "random (not stored)"
        secret = key or secrets.token_hex(32)
        self._key = secret.encode()
        self._uids = Deidentifier(secret, self)
        self._seen: dict[str, str] = {}

    def __call__(self, identifier: str) -> str:
        """The pseudonym of a patient key (PatientID, dataset folder name)."""
        if not self.enabled:
            return identifier
        if identifier not in self._seen:
            raw = identifier.encode("utf-8", "surrogateescape")  # a folder name's own bytes
            digest = hmac.new(self._key, raw, hashlib.sha256).hexdigest()
            self._seen[identifier] = f"P-{digest[:10]}"
        return self._seen[identifier]

    def uid(self, uid: str) -> str:
        """The replacement of a Study/Series/SOP Instance UID ("" stays "")."""
        if not self.enabled or not uid:
            return uid
        return self._uids.uid(uid)

    def describe(self) -> dict[str, Any]:
        """The record of summary.json (``pseudonymization``): on or off, how, whose key."""
        if not self.enabled:
            return {"enabled": False}
        return {"enabled": True, "method": METHOD, "key": self.key_source}

    def path(self, path: object) -> str | None:
        """An input path as a summary records it: itself, or WITHHELD when pseudonymising."""
        if path is None:
            return None
        return WITHHELD if self.enabled else str(path)

    def command(self, argv: Sequence[str]) -> str:
        """The command line to record: never the value of ``--key``; when pseudonymising, the
        program, subcommand and option names only (paths and values can name the patient)."""
        out: list[str] = []
        hide_next = False
        sub_seen = False
        for i, arg in enumerate(argv):
            if hide_next:
                out.append("***")
                hide_next = False
            elif arg == "--key":
                out.append(arg)
                hide_next = True
            elif arg.startswith("--key="):
                out.append("--key=***")
            elif not self.enabled or i == 0:
                out.append(arg)
            elif arg.startswith("-"):
                out.append(arg.split("=", 1)[0] + ("=…" if "=" in arg else ""))
            elif not sub_seen:
                out.append(arg)  # the subcommand (qa, evaluate, report)
                sub_seen = True
            else:
                out.append("…")
        return " ".join(out)


#: loggers whose messages are built from pseudonymised identifiers (the others are withheld)
MAPPED_LOGGERS = (
    "ldct",
    "pipeline.evaluate.runner",
    "pipeline.evaluate.pairing",
    "pipeline.report.render",
    "pipeline.report.images",
)


class _WithholdUnmapped(logging.Filter):
    """Lets through the records of :data:`MAPPED_LOGGERS`; any other record (the DICOM reader,
    the dataset scanner, third-party and Python warnings: they name input files and UIDs) is
    shown as one line saying that a message was withheld, without its text."""

    def filter(self, record: logging.LogRecord) -> bool:
        name = record.name
        if any(name == m or name.startswith(m + ".") for m in MAPPED_LOGGERS):
            return True
        record.msg = "%s: message withheld (%s; pseudonymised run: it may name an input file "
        record.msg += "or UID; run without --pseudonymize to read it)"
        record.args = (name, record.levelname.lower())
        record.exc_info = record.exc_text = None
        return True


def withhold_unmapped_logs() -> None:
    """Install the pseudonymised run's log policy on the root logger's handlers (CLI only)."""
    logging.captureWarnings(True)  # pydicom's UserWarnings quote tag values (UIDs)
    filt = _WithholdUnmapped()
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, _WithholdUnmapped) for f in handler.filters):
            handler.addFilter(filt)
