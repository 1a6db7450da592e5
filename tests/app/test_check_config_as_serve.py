"""`riskbudget check-config` finds what `serve` would refuse in a valid config: a token setting that
gives no token, a warm-up file it cannot read."""

from __future__ import annotations

import os

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


@pytest.mark.parametrize("mode", [0o755, 0o711])
def test_check_config_reports_a_socket_directory_others_can_enter_as_serve_words_it(tmp_path, capsys, mode):
    directory = tmp_path / "run"
    directory.mkdir()
    directory.chmod(mode)
    path = written(tmp_path, lambda data, tmp: data["sidecar"].update(listen=f"unix:{directory}/s.sock"))

    code = main(["check-config", path])

    assert code == 2
    assert capsys.readouterr().err.splitlines() == [
        f"{path}: sidecar.listen: cannot listen on unix:{directory}/s.sock: the socket's directory "
        f"{directory} must belong to this user with mode 0700 (it is uid {os.geteuid()}, mode "
        f"0{mode:o}); set sidecar.listen to a path in such a directory"]


@pytest.mark.parametrize("make_directory", [True, False], ids=["private", "missing"])
def test_check_config_passes_a_private_or_missing_socket_directory(tmp_path, capsys, make_directory):
    directory = tmp_path / "run"
    if make_directory:
        directory.mkdir(mode=0o700)
    path = written(tmp_path, lambda data, tmp: data["sidecar"].update(listen=f"unix:{directory}/s.sock"))

    code = main(["check-config", path])

    assert code == 0, capsys.readouterr().err
    assert directory.exists() == make_directory


def test_check_config_refuses_a_socket_path_the_os_cannot_take(tmp_path, capsys):
    listen = "unix:" + str(tmp_path / ("s" * 120))
    path = written(tmp_path, lambda data, tmp: data["sidecar"].update(listen=listen))

    code = main(["check-config", path])

    assert code == 2
    assert "sidecar.listen: the unix socket path is" in capsys.readouterr().err
