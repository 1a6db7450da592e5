"""`riskbudget check-config` finds what `serve` would refuse in a valid config: a token setting that
gives no token, a warm-up file it cannot read."""

from __future__ import annotations

import pytest
import yaml

from riskbudget_sidecar.app.cli import main

from ..rpc.conftest import config_data

UNSET = "RISKBUDGET_TEST_NEVER_SET"


def written(tmp_path, change) -> str:
    data = config_data()
    change(data, tmp_path)
    path = tmp_path / "sidecar.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


@pytest.mark.parametrize("change, problems", [
    (lambda data, tmp: data["sidecar"].update(client_token_env=UNSET),
     [f"sidecar.client_token_env: the environment variable {UNSET} is not set or empty"]),
    (lambda data, tmp: data["sidecar"].update(admin_token_file=str(tmp / "no-token")),
     ["sidecar.admin_token_file: cannot read: No such file or directory"]),
    (lambda data, tmp: data.update(warmup={"source": "csv", "path": str(tmp / "no.csv")}),
     ["warmup.path: cannot read {tmp}/no.csv: No such file or directory"]),
    (lambda data, tmp: (data["sidecar"].update(client_token_env=UNSET),
                        data.update(warmup={"source": "csv", "path": str(tmp / "no.csv")})),
     [f"sidecar.client_token_env: the environment variable {UNSET} is not set or empty",
      "warmup.path: cannot read {tmp}/no.csv: No such file or directory"]),
], ids=["token-env-unset", "token-file-missing", "warmup-csv-missing", "all-at-once"])
def test_check_config_reports_what_serve_would_refuse_naming_the_file_and_key(
        tmp_path, capsys, monkeypatch, change, problems):
    monkeypatch.delenv(UNSET, raising=False)
    path = written(tmp_path, change)

    code = main(["check-config", path])

    assert code == 2
    assert capsys.readouterr().err.splitlines() == [
        f"{path}: {problem.replace('{tmp}', str(tmp_path))}" for problem in problems]


def test_check_config_passes_a_config_whose_token_and_warmup_are_there(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("RISKBUDGET_TEST_CLIENT_TOKEN", "client-token-0123")
    prices = tmp_path / "prices.csv"
    prices.write_text("time,AAA,BBB,CCC,DDD\n2024-01-02,100,50,20,10\n")

    def change(data, tmp):
        data["sidecar"].update(client_token_env="RISKBUDGET_TEST_CLIENT_TOKEN")
        data.update(warmup={"source": "csv", "path": str(prices)})

    code = main(["check-config", written(tmp_path, change)])

    assert code == 0
    assert "OK" in capsys.readouterr().out
