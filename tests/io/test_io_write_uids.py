"""Derived UIDs are deterministic and valid; clipping counts exclude padding."""

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


def test_padding_voxels_are_not_counted_as_clipped():
    import numpy as np

    from pipeline.io.write import hu_to_stored

    hu = np.array([[-5000.0, 0.0], [100.0, 9000.0]])
    pad = np.array([[True, False], [False, False]])
    _, all_counted = hu_to_stored(hu, 1.0, -1024.0, 12, 0)
    _, real = hu_to_stored(hu, 1.0, -1024.0, 12, 0, ignore=pad)
    assert (all_counted, real) == (2, 1)  # -5000 HU is padding; 9000 HU is a real clip
