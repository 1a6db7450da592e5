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


def test_check_config_refuses_a_missing_socket_directory_whose_way_others_may_change(tmp_path, capsys):
    """Found by a reviewer: `serve` refused it, `check-config` passed it."""
    open_dir = tmp_path / "open"
    open_dir.mkdir()
    open_dir.chmod(0o777)
    path = written(tmp_path, lambda data, tmp: data["sidecar"].update(listen=f"unix:{open_dir}/run/s.sock"))

    code = main(["check-config", path])

    assert code == 2
    assert capsys.readouterr().err.startswith(
        f"{path}: sidecar.listen: cannot listen on unix:{open_dir}/run/s.sock: the directory {open_dir} (mode 0777) ")
    assert not (open_dir / "run").exists()


def test_check_config_refuses_a_socket_path_the_os_cannot_take(tmp_path, capsys):
    listen = "unix:" + str(tmp_path / ("s" * 120))
    path = written(tmp_path, lambda data, tmp: data["sidecar"].update(listen=listen))

    code = main(["check-config", path])

    assert code == 2
    assert "sidecar.listen: the unix socket path is" in capsys.readouterr().err


SAME_PORT = 50999
"""A fixed port for the gRPC and HTTP listeners to share: the tests below never bind it (serve's
refusal comes first, and start_server is replaced so that a missing refusal binds nothing)."""


@pytest.mark.parametrize("grpc_host, http_host", [("127.0.0.1", "127.0.0.1"), ("localhost", "127.0.0.1"),
                                                  ("[::1]", "[::1]")])
def test_check_config_refuses_the_http_port_on_the_grpc_address_naming_both_keys(
        tmp_path, capsys, grpc_host, http_host):
    path = written(tmp_path, lambda data, tmp: (data["sidecar"].update(listen=f"{grpc_host}:{SAME_PORT}"),
                                                data["http"].update(listen=f"{http_host}:{SAME_PORT}")))

    code = main(["check-config", path])

    assert code == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"{path}: http.listen: {http_host}:{SAME_PORT} is the same address as sidecar.listen")


@pytest.mark.parametrize("sidecar_listen, http_listen", [
    ("127.0.0.1:0", "127.0.0.1:0"),  # each gets a free port
    (f"127.0.0.1:{SAME_PORT}", f"127.0.0.1:{SAME_PORT + 1}"),
    (f"127.0.0.1:{SAME_PORT}", f"127.0.0.2:{SAME_PORT}"),
    ("unix:/tmp/riskbudget-test-never/s.sock", f"127.0.0.1:{SAME_PORT}"),
], ids=["both-ephemeral", "other-port", "other-host", "unix"])
def test_check_config_passes_listeners_apart(tmp_path, capsys, sidecar_listen, http_listen):
    path = written(tmp_path, lambda data, tmp: (data["sidecar"].update(listen=sidecar_listen),
                                                data["http"].update(listen=http_listen)))

    assert main(["check-config", path]) == 0, capsys.readouterr().err


def test_check_config_passes_the_same_address_when_http_is_disabled(tmp_path, capsys):
    path = written(tmp_path, lambda data, tmp: (data["sidecar"].update(listen=f"127.0.0.1:{SAME_PORT}"),
                                                data["http"].update(listen=f"127.0.0.1:{SAME_PORT}",
                                                                    enabled=False)))

    assert main(["check-config", path]) == 0, capsys.readouterr().err


@pytest.fixture
def serve_set_up(monkeypatch):
    """What `serve` sets up for the process (its logging, faulthandler) left as the tests have it."""
    monkeypatch.setattr("riskbudget_sidecar.app.logging.configure_logging", lambda level, **options: None)
    monkeypatch.setattr("faulthandler.enable", lambda: None)


@pytest.fixture
def nothing_binds(monkeypatch, serve_set_up):
    """serve's start_server replaced: a start that gets as far as binding fails the test."""
    async def start_server(*args, **kwargs):
        raise AssertionError("start_server called: the refusal must come before binding")

    monkeypatch.setattr("riskbudget_sidecar.app.serve.start_server", start_server)


@pytest.mark.parametrize("listen_option, setting", [([], "sidecar.listen"),
                                                    (["--listen", f"127.0.0.1:{SAME_PORT}"], "--listen")])
def test_serve_refuses_the_http_port_on_the_grpc_address_before_binding(
        tmp_path, capsys, nothing_binds, listen_option, setting):
    path = written(tmp_path, lambda data, tmp: (data["sidecar"].update(listen=f"127.0.0.1:{SAME_PORT}"),
                                                data["http"].update(listen=f"127.0.0.1:{SAME_PORT}")))
    if listen_option:  # the config's own sidecar.listen is apart; the override is not
        path = written(tmp_path, lambda data, tmp: data["http"].update(listen=f"127.0.0.1:{SAME_PORT}"))

    code = main(["serve", "--config", path, *listen_option])

    assert code == 2
    assert capsys.readouterr().err.splitlines() == [
        f"http.listen: 127.0.0.1:{SAME_PORT} is the same address as {setting} (127.0.0.1:{SAME_PORT}): "
        "give the admin HTTP port a port of its own"]


@pytest.fixture
def serve_not_run(monkeypatch, serve_set_up):
    """`serve` itself replaced: what it would have been called with, recorded."""
    calls = []

    async def serve(config, *, config_path, listen=None):
        calls.append(listen)

    monkeypatch.setattr("riskbudget_sidecar.app.serve.serve", serve)
    return calls


@pytest.mark.parametrize("listen, error", [
    ("", "must not be empty: host:port or unix:/path (without --listen, sidecar.listen is used)"),
    ("127.0.0.1", "listen address '127.0.0.1' is not host:port or unix:/path"),
    ("127.0.0.1:99999", "port 99999 is out of range"),
    ("example.com:1", "listen host 'example.com' must be an IP address or localhost"),
    ("unix:relative.sock", "a unix socket path must be absolute: unix:/path/to/socket"),
], ids=["empty", "no-port", "port-out-of-range", "name", "unix-relative"])
def test_serve_refuses_a_malformed_or_empty_listen_as_a_usage_error_naming_it(
        tmp_path, capsys, serve_not_run, listen, error):
    with pytest.raises(SystemExit) as exited:
        main(["serve", "--config", written(tmp_path, lambda data, tmp: None), "--listen", listen])

    assert exited.value.code == 2
    assert capsys.readouterr().err.endswith(f"riskbudget serve: error: argument --listen: {error}\n")
    assert serve_not_run == []


def test_serve_refuses_a_listen_that_is_not_loopback_exit_2_naming_it(tmp_path, capsys, serve_not_run):
    code = main(["serve", "--config", written(tmp_path, lambda data, tmp: None), "--listen", "10.1.2.3:5"])

    assert code == 2
    assert capsys.readouterr().err.splitlines() == [
        "argument --listen: listen host 10.1.2.3 is not loopback; set sidecar.allow_non_loopback to expose it"]
    assert serve_not_run == []


def test_serve_takes_a_good_listen(tmp_path, serve_not_run):
    assert main(["serve", "--config", written(tmp_path, lambda data, tmp: None), "--listen", "127.0.0.1:0"]) == 0
    assert serve_not_run == ["127.0.0.1:0"]


@pytest.mark.parametrize("mode, warned", [(0o644, True), (0o640, False), (0o600, False), (0o400, False)])
def test_check_config_warns_of_a_token_file_other_users_may_read_or_change(tmp_path, capsys, mode, warned):
    """Found by a tester: a token file of mode 0666 passed check-config and serve without a word,
    where the state file and the socket's directory are locked down."""
    token = tmp_path / "admin-token"
    token.write_text("admin-token-0123")
    token.chmod(mode)

    code = main(["check-config", written(tmp_path, lambda data, tmp: data["sidecar"].update(
        admin_token_file=str(token)))])

    assert code == 0  # a warning: a container's secret mount is commonly 0644
    assert capsys.readouterr().err.splitlines() == ([
        f"{tmp_path}/sidecar.yaml: warning: sidecar.admin_token_file: {token} (mode {mode:04o}) may be read "
        "by other users: chmod 600 it, or 640 for a group of the sidecar's"] if warned else [])


@pytest.mark.parametrize("mode, who", [(0o666, "others"), (0o660, f"its group ({os.getegid()})")])
def test_check_config_refuses_a_token_file_its_group_or_others_may_write(tmp_path, capsys, mode, who):
    """Found by a reviewer: a token file of mode 0666 was only warned of, and another user wrote
    their token into it for the next reload."""
    token = tmp_path / "admin-token"
    token.write_text("admin-token-0123")
    token.chmod(mode)
    path = written(tmp_path, lambda data, tmp: data["sidecar"].update(admin_token_file=str(token)))

    code = main(["check-config", path])

    assert code == 2
    assert capsys.readouterr().err.splitlines() == [
        f"{path}: sidecar.admin_token_file: the file {token} (mode {mode:04o}) may be written by {who}, who "
        f"could replace what is in it: chmod go-w {token}; keep the file where only this user (and root) can "
        "change it"]
