"""The optional denoise manifest: unreadable files are skipped with a warning, not a crash."""

from __future__ import annotations

import json
import logging

import pytest

from pipeline.evaluate.provenance import denoise_rows


def test_manifest_rows_keyed_by_derived_uid(tmp_path):
    rows = [{"derived_series_uid": "1.2.3", "tiling": "tile=256 stride=224"}]
    (tmp_path / "manifest.json").write_text(json.dumps({"rows": rows}), encoding="utf-8")
    assert denoise_rows(tmp_path / "P1") == {"1.2.3": rows[0]}


@pytest.mark.parametrize("raw", [b'{"rows": [', b'{"rows": ["\xe9"]}'])
def test_unreadable_manifest_is_skipped_with_warning(tmp_path, caplog, raw):
    (tmp_path / "manifest.json").write_bytes(raw)
    with caplog.at_level(logging.WARNING):
        assert denoise_rows(tmp_path) == {}
    assert "cannot read denoise manifest" in caplog.text
