"""Spool mechanics without a network: durable store, quiet-period queueing, flock claims,
path safety, and peer parsing."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from pipeline.errors import ConfigError, LdctError
from pipeline.pacs.node import Node
from pipeline.pacs.scu import StudyQuery
from pipeline.pacs.spool import Spool, job_study_uid


def test_store_queue_claim_finish(tmp_path: Path) -> None:
    sp = Spool(tmp_path / "s").create()
    p = sp.store_instance("1.2.3", "1.2.3.4", b"x" * 10)
    assert p.read_bytes() == b"x" * 10 and p.parent.name == "1.2.3"
    assert not list(sp.d("tmp").iterdir())
    # not quiet yet -> stays; quiet (mtime in the past) -> one job
    assert sp.queue_quiet(5.0, not_before=0) == []
    old = time.time() - 10
    os.utime(p.parent, (old, old))
    assert sp.queue_quiet(5.0, not_before=time.time()) == []  # restart resets the clock
    (job,) = sp.queue_quiet(5.0, not_before=0)
    assert job_study_uid(job) == "1.2.3" and (job / "1.2.3.4.dcm").is_file()
    assert sp.incoming_studies() == []
    # two claimants of one job: exactly one wins (flock per open file, also within a process)
    with sp.claim(job) as first:
        assert first
        assert sp.is_claimed(job)
        with sp.claim(job) as second:
            assert not second
    assert not sp.is_claimed(job)
    sp.work_dir(job).mkdir()
    sp.finish(job)
    assert sp.is_empty()
    with sp.claim(job) as gone:  # a finished job cannot be claimed again
        assert not gone


def test_refuses_bad_uids_and_paths(tmp_path: Path) -> None:
    sp = Spool(tmp_path / "s").create()
    for study, sop in (("../../etc", "1.2"), ("1.2", "../x"), ("1.2", ""), ("1.2", "1." * 40)):
        with pytest.raises(ValueError):
            sp.store_instance(study, sop, b"x")
    assert not any(sp.d("incoming").iterdir())
    q = sp.quarantine(b"abc", "PixelData missing", "X@127.0.0.1")
    assert q.parent == sp.d("quarantine") and (q / "instance.dcm").read_bytes() == b"abc"
    from pipeline.pacs.durable import inside

    with pytest.raises(LdctError):
        inside(sp.root, sp.root / ".." / "outside")


def test_log_hides_study_uid_unless_asked(tmp_path: Path) -> None:
    sp = Spool(tmp_path / "s").create()
    sp.log_event("queued", "1.2.840.99", instances=3)
    assert "1.2.840.99" not in (sp.d("log") / "studies.jsonl").read_text()
    sp2 = Spool(tmp_path / "s", log_phi=True)
    sp2.log_event("queued", "1.2.840.99", instances=3)
    assert "1.2.840.99" in (sp.d("log") / "studies.jsonl").read_text()


def test_peer_and_query_parsing() -> None:
    assert Node.parse("ORTHANC@127.0.0.1:4242") == Node("ORTHANC", "127.0.0.1", 4242)
    assert Node.parse("A@[::1]:104").host == "::1"
    for bad in ("ORTHANC", "@h:1", "A@h:0", "A@h:x", "WAY_TOO_LONG_AE_TITLE@h:1"):
        with pytest.raises(ConfigError):
            Node.parse(bad)
    with pytest.raises(ConfigError):
        StudyQuery().check()
    with pytest.raises(ConfigError):
        StudyQuery(date="2020-01-01").check()
    with pytest.raises(ConfigError):
        StudyQuery(study_uid="abc").check()
    assert StudyQuery(date="20200101-").check().date == "20200101-"
