"""Derived UIDs are deterministic (a rerun must not duplicate series) and valid DICOM UIDs."""

import re

from pipeline.io.write import derive_uid

UID = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$")


def test_same_parts_same_uid_and_different_parts_differ():
    a = derive_uid("1.2.3", "model-abc")
    assert a == derive_uid("1.2.3", "model-abc")
    assert a != derive_uid("1.2.3", "model-abd")
    assert derive_uid("a", "bc") != derive_uid("ab", "c")  # parts are separated, not concatenated


def test_uid_is_valid_2_25_form():
    for i in range(200):
        uid = derive_uid(str(i))
        assert uid.startswith("2.25.") and UID.match(uid) and len(uid) <= 64
