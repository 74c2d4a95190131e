"""Integration: the simulation helper's demo cohort is discovered, validated and loaded (slow)."""

from __future__ import annotations

import pytest


@pytest.mark.slow
def test_demo_cohort_pairs_check_and_loads(tmp_path):
    from pipeline.data.config import DataConfig, build_loaders
    from pipeline.data.quality import check_dataset
    from pipeline.io.write import derive_uid
    from pipeline.simulate.cohort import make_demo_cohort

    if derive_uid("for", "1.2.3") != derive_uid("for", "1.2.3"):
        # pipeline.io.write.derive_uid uses pydicom generate_uid(prefix=None, entropy_srcs=...),
        # which ignores entropy_srcs: the full and low series get different random
        # FrameOfReferenceUIDs and strict pairing (rightly) refuses them.
        pytest.xfail("io.write.derive_uid is not deterministic (FrameOfReferenceUID differs)")
    make_demo_cohort(tmp_path / "demo", n_patients=3, n_slices=3, size=64, seed=0)
    report = check_dataset(tmp_path / "demo")
    assert report.ok, report.as_dict()
    assert [p.layout for p in report.pairs] == ["demo"] * 3
    assert all(p.noise_added_hu and p.noise_added_hu > 1.0 for p in report.pairs)
    cfg = DataConfig(
        root=tmp_path / "demo",
        patch_size=32,
        batch_size=4,
        num_workers=0,
        val_fraction=0.34,
        test_fraction=0.0,
    )
    loaders = build_loaders(cfg, seed=0)
    batch = next(iter(loaders.train))
    assert batch["low"].shape == (4, 1, 32, 32)
