"""Keyed pseudonyms for patient identifiers (HMAC-SHA256), applied everywhere a report writes."""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets

ENV_KEY = "LDCT_PSEUDONYM_KEY"


class Pseudonymizer:
    """Maps identifiers to ``P-<10 hex>`` with a secret key; identity when disabled.

    The same key gives the same pseudonyms across runs (so reports can be linked by whoever holds
    the key). Without a key (argument or ``LDCT_PSEUDONYM_KEY``) a random one is drawn per run and
    never written anywhere, so the mapping cannot be reversed from the output.
    """

    def __init__(self, enabled: bool, key: str | None = None) -> None:
        self.enabled = enabled
        key = key or os.environ.get(ENV_KEY)
        self.key_source = "given" if key else "random (not stored)"
        self._key = (key or secrets.token_hex(32)).encode()
        self._seen: dict[str, str] = {}

    def __call__(self, identifier: str) -> str:
        if not self.enabled:
            return identifier
        if identifier not in self._seen:
            digest = hmac.new(self._key, identifier.encode(), hashlib.sha256).hexdigest()
            self._seen[identifier] = f"P-{digest[:10]}"
        return self._seen[identifier]

    def scrub(self, text: str) -> str:
        """Replace every identifier seen so far inside free text (longest first)."""
        if not self.enabled:
            return text
        for original in sorted(self._seen, key=len, reverse=True):
            if original:
                text = text.replace(original, self._seen[original])
        return text

    def alias(self, original: str, of: str) -> None:
        """Make ``original`` (e.g. a DICOM PatientName) map to the pseudonym of ``of``."""
        if self.enabled and original and original not in self._seen:
            self._seen[original] = self(of)
