"""Reading a config file: bad bytes or bad YAML are a ConfigError naming the file, never a traceback."""

import os
from pathlib import Path

import pytest
import yaml

from riskbudget_sidecar.app.cli import main
from riskbudget_sidecar.service.config_file import ConfigError, load_config, parse_config
from riskbudget_sidecar.service.warmup import check_warmup_file

from .test_config_file import ROOT

DEFAULT = ROOT / "config" / "default.yaml"


def default_with(tmp_path: Path, tail: bytes) -> Path:
    """config/default.yaml with `tail` appended, written to tmp_path."""
    path = tmp_path / "cfg.yaml"
    path.write_bytes(DEFAULT.read_bytes() + tail)
    return path


def written(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cfg.yaml"
    path.write_text(text)
    return path


def refusal(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as refused:
        load_config(path)
    return refused.value.errors


def test_a_path_that_is_no_regular_file_is_refused_without_waiting_on_it(tmp_path):
    """Found by a tester: a config path made a FIFO (a hung mount stands in alike) wedged the
    reload reading it, every later reload, and SIGTERM."""
    fifo = tmp_path / "sidecar.yaml"
    os.mkfifo(fifo)

    with pytest.raises(ConfigError, match="sidecar.yaml: cannot read: not a regular file"):
        load_config(fifo)


def test_a_warm_up_file_that_is_no_regular_file_is_refused_without_waiting_on_it(tmp_path):
    """Found by a reviewer: the same through a CSV warm-up a reload named."""
    fifo = tmp_path / "prices.csv"
    os.mkfifo(fifo)
    config = yaml.safe_load((ROOT / "config" / "default.yaml").read_text())
    config["warmup"] = {"source": "csv", "path": str(fifo)}

    with pytest.raises(ConfigError, match="warmup.path: cannot read .*prices.csv: not a regular file"):
        check_warmup_file(parse_config(config, source="test"))


def test_a_file_that_is_not_utf8_is_refused_naming_the_byte_its_offset_and_line(tmp_path):
    path = default_with(tmp_path, b"# r\xe9sum\xe9\n")
    offset = len(DEFAULT.read_bytes()) + len(b"# r")
    line = DEFAULT.read_bytes().count(b"\n") + 1

    assert refusal(path) == [f"{path}: not UTF-8 text: byte 0xe9 at offset {offset} (line {line})"]


@pytest.mark.parametrize("tail", [b"# r\xe9sum\xe9\n", b"\xff"], ids=["latin-1", "0xff"])
def test_check_config_exits_2_on_a_file_that_is_not_utf8(tmp_path, capsys, tail):
    path = default_with(tmp_path, tail)

    code = main(["check-config", str(path)])

    assert code == 2
    assert f"{path}: not UTF-8 text" in capsys.readouterr().err


@pytest.mark.parametrize("tail", [b"\0" * 4096, b"limits: {max_staleness: 30}\x01\n"], ids=["torn", "control"])
def test_a_nul_or_control_character_is_refused_as_bad_yaml_naming_the_file(tmp_path, tail):
    half = DEFAULT.read_bytes()[: len(DEFAULT.read_bytes()) // 2]
    path = tmp_path / "cfg.yaml"
    path.write_bytes(half.rsplit(b"\n", 1)[0] + b"\n" + tail)  # a file torn by a crash: zeros past the end

    [problem] = refusal(path)

    assert problem.startswith(f"{path}: not valid YAML:") and "special characters are not allowed" in problem


def test_nesting_too_deep_for_the_parser_is_refused(tmp_path):
    path = written(tmp_path, "limits: " + "[" * 5_000 + "]" * 5_000 + "\n")

    assert refusal(path) == [f"{path}: not valid YAML: nested too deeply"]


@pytest.mark.parametrize("value, kind", [
    ("2023-02-30", "timestamp"),
    ("!!timestamp soon", "timestamp"),
    ("!!int twelve", "int"),
    ("!!float x", "float"),
])
def test_a_scalar_yaml_cannot_convert_is_refused_as_bad_yaml_with_its_line(tmp_path, value, kind):
    path = written(tmp_path, f"sidecar:\n  shutdown_grace: {value}\n")

    [error] = refusal(path)

    assert error.startswith(f"{path}: not valid YAML: not a valid {kind}: ")
    assert "line 2, column 19" in error


def test_a_duplicate_section_is_refused_naming_it_and_both_lines(tmp_path):
    path = default_with(tmp_path, b"limits:\n  max_staleness: 10\n")
    lines = DEFAULT.read_text().splitlines()
    first, second = lines.index("limits:") + 1, len(lines) + 1

    assert refusal(path) == [f"{path}: limits: duplicate key (lines {first} and {second})"]


def test_a_duplicate_nested_key_is_refused_naming_its_path(tmp_path):
    path = written(tmp_path, "portfolio:\n  strategies:\n    a: {symbols: [X]}\n"
                             "  lot_sizes:\n    X: 1\n    'X': 2\n")

    assert refusal(path) == [f"{path}: portfolio.lot_sizes.X: duplicate key (lines 5 and 6)"]


def test_a_duplicate_key_inside_a_list_item_names_its_index(tmp_path):
    path = written(tmp_path, "limits:\n  restricted_symbols:\n    - {a: 1}\n    - {a: 1, a: 2}\n")

    assert refusal(path) == [f"{path}: limits.restricted_symbols.1.a: duplicate key (lines 4 and 4)"]


def test_a_key_merged_in_with_yaml_merge_keys_may_still_be_overridden(tmp_path):
    text = DEFAULT.read_text().replace("    bull:\n", "    bull: &bull\n").replace(
        "    bear:\n      equity_allocation: 0.4\n", "    bear:\n      <<: *bull\n      equity_allocation: 0.4\n")
    path = written(tmp_path, text)

    config = load_config(path)

    assert config.risk_budgeting.regime_allocations.bear.equity_allocation == 0.4
