"""Config files that cannot be decoded give one ConfigError naming the file."""

from __future__ import annotations

import pytest

from pipeline.config import read_yaml
from pipeline.errors import ConfigError


def test_config_not_utf8_names_the_file(tmp_path):
    path = tmp_path / "train.yaml"
    path.write_bytes(b"seed: 1\nname: \xe9\n")  # Latin-1 e-acute
    with pytest.raises(ConfigError, match="not UTF-8 text") as info:
        read_yaml(path)
    assert info.value.path == path


def test_train_cli_on_non_utf8_config_is_one_error_line(tmp_path, run_cli):
    path = tmp_path / "train.yaml"
    path.write_bytes(b"seed: \xe9\n")
    res = run_cli("train", "--config", str(path))
    assert res.exit_code != 0
    assert "Traceback" not in res.stdout + res.stderr
    assert "not UTF-8 text" in res.stdout + res.stderr
