"""Patient-level splits: reproducible, order-independent, leak-checked, manifest round trip."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.data.pairs import PairSpec
from pipeline.data.splits import (
    Splits,
    assign,
    check_leakage,
    explicit_splits,
    load_splits,
    make_splits,
    save_splits,
)
from pipeline.errors import DatasetError

PATIENTS = [f"P{i:02d}" for i in range(20)]


def test_split_is_seeded_and_independent_of_input_order():
    a = make_splits(PATIENTS, val_fraction=0.2, test_fraction=0.1, seed=4)
    b = make_splits(list(reversed(PATIENTS)), val_fraction=0.2, test_fraction=0.1, seed=4)
    c = make_splits(PATIENTS, val_fraction=0.2, test_fraction=0.1, seed=5)
    assert a.as_dict() == b.as_dict()
    assert a.as_dict() != c.as_dict()
    assert (len(a.train), len(a.val), len(a.test)) == (14, 4, 2)
    assert sorted(a.train + a.val + a.test) == PATIENTS  # a partition


def test_small_cohort_gets_one_val_and_one_test_patient():
    s = make_splits(["A", "B", "C"], val_fraction=0.1, test_fraction=0.1, seed=0)
    assert (len(s.train), len(s.val), len(s.test)) == (1, 1, 1)
    with pytest.raises(DatasetError, match="no patient left for training"):
        make_splits(["A", "B"], val_fraction=0.5, test_fraction=0.4)


def test_leakage_of_patient_is_refused():
    with pytest.raises(DatasetError, match="patient 'B' is in both train and test"):
        explicit_splits(["A", "B"], ["C"], ["B"])


def test_leakage_of_series_under_two_names_is_refused(tmp_path):
    shared = tmp_path / "series"
    pairs = [
        PairSpec("A", shared, tmp_path / "fa"),
        PairSpec("B", shared, tmp_path / "fb"),  # same low-dose folder under another patient
    ]
    with pytest.raises(
        DatasetError, match=r"series .*series is used by 'A' \(train\) and 'B' \(val\)"
    ):
        check_leakage(Splits(train=["A"], val=["B"]), pairs)


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_manifest_round_trip(tmp_path, suffix):
    s = make_splits(PATIENTS, seed=1)
    pairs = [PairSpec(p, Path(f"/d/{p}/low"), Path(f"/d/{p}/full")) for p in PATIENTS]
    path = save_splits(s, tmp_path / f"splits{suffix}", pairs)
    back = load_splits(path)
    assert back.as_dict() == s.as_dict()
    assert (back.seed, back.method) == (1, "random")


def test_assign_refuses_unknown_and_unassigned_patients(tmp_path):
    pairs = [PairSpec(p, tmp_path / p / "l", tmp_path / p / "f") for p in ("A", "B", "C")]
    by = assign(pairs, Splits(train=["A", "B"], test=["C"]))
    assert [p.patient for p in by["train"]] == ["A", "B"] and by["val"] == []
    with pytest.raises(DatasetError, match="1 patient\\(s\\) are in no split: C"):
        assign(pairs, Splits(train=["A", "B"]))
    with pytest.raises(DatasetError, match="not in the dataset: Z"):
        assign(pairs, Splits(train=["A", "B", "C"], val=["Z"]))


def test_bad_manifest_is_a_dataset_error(tmp_path):
    p = tmp_path / "s.yaml"
    p.write_text("train: P1\n")
    with pytest.raises(DatasetError, match="'train' must be a list"):
        load_splits(p)


def test_slice_leakage_by_sop_uid():
    from pipeline.data.splits import check_slice_leakage

    check_slice_leakage({"train": {"A": ["1", "2"]}, "val": {"B": ["3"]}})
    with pytest.raises(
        DatasetError, match=r"1 slice\(s\) of 'B' \(val\) are also in 'A' \(train\)"
    ):
        check_slice_leakage({"train": {"A": ["1", "2"]}, "val": {"B": ["2", "3"]}})
