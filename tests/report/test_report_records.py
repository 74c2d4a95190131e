"""The report reads the series folders ``ldct evaluate`` recorded: it never pairs or scans the
input trees again (a spy on the scanner proves it); older summaries still re-pair."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest

import pipeline.evaluate.pairing as pairing_mod
import pipeline.io.discover as discover_mod
from pipeline.report.config import ReportConfig
from pipeline.report.images import load_patient_images
from pipeline.report.render import build_report


class _Spy:
    """Counts calls and keeps the paths each call was given."""

    def __init__(self, real):  # type: ignore[no-untyped-def]
        self.real, self.calls = real, []

    def __call__(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        self.calls.append(args)
        return self.real(*args, **kwargs)


@pytest.fixture
def spies(monkeypatch: pytest.MonkeyPatch) -> dict[str, _Spy]:
    out = {"pair_inputs": _Spy(pairing_mod.pair_inputs), "scan": _Spy(discover_mod.scan)}
    monkeypatch.setattr(pairing_mod, "pair_inputs", out["pair_inputs"])
    monkeypatch.setattr(pairing_mod, "scan", out["scan"])
    monkeypatch.setattr(discover_mod, "scan", out["scan"])
    return out


def _summary(evaluated_cohort) -> dict:  # type: ignore[no-untyped-def]
    return json.loads((evaluated_cohort.evaluation / "summary.json").read_text(encoding="utf-8"))


def test_report_reads_recorded_folders_without_rescanning(evaluated_cohort, spies, tmp_path):
    summary = _summary(evaluated_cohort)
    result = build_report(evaluated_cohort.evaluation, tmp_path / "report", ReportConfig())
    assert len(result.pages) == len(summary["patients"]) == 2
    assert spies["pair_inputs"].calls == []  # no re-pairing ...
    recorded = {
        Path(folder)
        for info in summary["patients"]
        for rec in info["series_folders"].values()
        for folder in rec["folders"]
    }
    roots = {evaluated_cohort.cohort.resolve(), evaluated_cohort.denoised.resolve()}
    scanned = [Path(p) for (paths,) in spies["scan"].calls for p in paths]
    assert len(spies["scan"].calls) == 3 * 2  # low, full, denoised per patient, once each
    # ... and only the files of the recorded series folders were read, never an input tree
    assert scanned and all(p.is_file() and p.parent.resolve() in recorded for p in scanned)
    assert not {p.resolve() for p in scanned} & roots
    for page in result.pages.values():
        assert "images unavailable" not in page.read_text(encoding="utf-8")


def test_recorded_folders_give_the_volumes_the_pairing_rule_gives(evaluated_cohort, spies):
    """Oracle: the summary without its records (an older evaluation) re-pairs the inputs with
    the evaluation's rule; both routes read the same voxels for every role."""
    summary = _summary(evaluated_cohort)
    old = copy.deepcopy(summary)
    for info in old["patients"]:
        del info["series_folders"]
    for info in summary["patients"]:
        new = load_patient_images(summary, info["patient"])
        n_pair = len(spies["pair_inputs"].calls)
        ref = load_patient_images(old, info["patient"])
        assert len(spies["pair_inputs"].calls) == n_pair + 1  # the fallback did re-pair
        assert not new.problem and set(new.volumes) == set(ref.volumes) == {
            "low", "full", "denoised"
        }  # fmt: skip
        for role, vol in new.volumes.items():
            np.testing.assert_array_equal(vol.hu, ref.volumes[role].hu)
            uid = vol.meta.get("SeriesInstanceUID")
            assert uid and uid == ref.volumes[role].meta.get("SeriesInstanceUID")


def test_a_moved_series_folder_is_a_problem_on_the_page_not_a_crash(evaluated_cohort, tmp_path):
    summary = _summary(evaluated_cohort)
    info = summary["patients"][0]
    gone = tmp_path / "moved-away"
    info["series_folders"]["denoised"]["folders"] = [str(gone)]
    images = load_patient_images(summary, info["patient"])
    assert images.volumes == {}
    assert "denoised series folder no longer exists" in images.problem
    assert str(gone) in images.problem
