"""`changeable_by_others`: whether another user of the host could change what a path names."""

from __future__ import annotations

import os

import pytest

from riskbudget_sidecar.service import trusted_paths
from riskbudget_sidecar.service.trusted_paths import changeable_by_others

OTHER_UID = 65534


@pytest.fixture
def seen_as(monkeypatch):
    """`seen_as(path, uid=..., gid=...)`: the check's `lstat` reports `path` with that owner
    (chown and chgrp to others need root)."""
    changed: dict[str, dict[int, int]] = {}
    real_lstat = os.lstat

    def lstat(path):
        info = real_lstat(path)
        fields = list(info[:10])
        for index, value in changed.get(os.fspath(path), {}).items():
            fields[index] = value
        return os.stat_result(fields)

    monkeypatch.setattr(trusted_paths.os, "lstat", lstat)

    def see(path, *, uid: int | None = None, gid: int | None = None) -> None:
        changed[os.fspath(path)] = {index: value for index, value in ((4, uid), (5, gid)) if value is not None}
    return see


def test_a_path_of_this_users_private_directories_is_trusted(tmp_path):
    (tmp_path / "run").mkdir(mode=0o700)
    (tmp_path / "run" / "token").write_text("t")

    assert changeable_by_others(tmp_path / "run" / "token") is None


@pytest.mark.parametrize("mode, who", [
    (0o777, "others"), (0o757, "others"), (0o703, "others"),
    (0o775, f"its group ({os.getegid()})"), (0o770, f"its group ({os.getegid()})"),
    (0o2770, f"its group ({os.getegid()})"),
])
def test_a_directory_its_group_or_others_may_write_on_the_way_is_named(tmp_path, mode, who):
    """Any group: who is in one cannot be known (one given at run time, Kubernetes' runAsGroup or
    systemd's SupplementaryGroups, is listed nowhere); reviews found a shared group taken for the
    user's own, and another workload with the same gid rewriting a token file."""
    shared = tmp_path / "shared"
    (shared / "run").mkdir(parents=True)
    shared.chmod(mode)

    assert changeable_by_others(shared / "run") == (
        f"the directory {shared} (mode {mode:04o}) may be written by {who}, who could replace what is in it: "
        f"chmod go-w {shared}")


@pytest.mark.parametrize("mode, who", [(0o666, "others"), (0o622, "others"), (0o660, f"its group ({os.getegid()})")])
def test_a_file_its_group_or_others_may_write_is_named(tmp_path, mode, who):
    """Found by a reviewer: a token file of 0666 was only warned of, and another user wrote their
    token into it for the next reload."""
    token = tmp_path / "token"
    token.write_text("t")
    token.chmod(mode)

    assert changeable_by_others(token) == (
        f"the file {token} (mode {mode:04o}) may be written by {who}, who could replace what is in it: "
        f"chmod go-w {token}")


def test_a_file_another_user_owns_is_named_on_a_read_only_mount_too(tmp_path, seen_as, monkeypatch):
    """Found by a reviewer: a read-only bind mount's source stays writable by its owner, who
    rewrote a token read through one."""
    secret = tmp_path / "secret"
    secret.write_text("t")
    secret.chmod(0o444)
    seen_as(secret, uid=OTHER_UID)
    real_statvfs = os.statvfs

    def statvfs(path):
        info = real_statvfs(path)
        if os.fspath(path) != os.fspath(secret):
            return info
        return os.statvfs_result((*info[:8], info.f_flag | os.ST_RDONLY, info.f_namemax))
    monkeypatch.setattr(os, "statvfs", statvfs)

    assert f"belongs to another user (uid {OTHER_UID})" in changeable_by_others(secret)


def test_a_sticky_directory_like_tmp_on_the_way_is_trusted(tmp_path):
    shared = tmp_path / "tmp"
    (shared / "mine").mkdir(parents=True)
    shared.chmod(0o1777)

    assert changeable_by_others(shared / "mine") is None


def test_a_link_another_user_owns_on_the_way_is_named(tmp_path, seen_as):
    """The tester's swap: a link in a sticky directory, owned by another user, pointing at a
    private directory of this user's until its owner points it elsewhere."""
    shared = tmp_path / "tmp"
    shared.mkdir()
    shared.chmod(0o1777)
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    link = shared / "rb"
    link.symlink_to(private)
    seen_as(link, uid=OTHER_UID)

    assert changeable_by_others(link) == (
        f"the symbolic link {link} belongs to another user (uid {OTHER_UID}), who could replace what it names")


def test_a_file_another_user_owns_is_named(tmp_path, seen_as):
    token = tmp_path / "token"
    token.write_text("t")
    seen_as(token, uid=OTHER_UID)

    assert "the file" in changeable_by_others(token) and f"(uid {OTHER_UID})" in changeable_by_others(token)


def test_links_are_followed_to_where_they_lead(tmp_path):
    """A link of this user's to a directory others may write is no safer than the directory."""
    open_dir = tmp_path / "open"
    (open_dir / "run").mkdir(parents=True)
    open_dir.chmod(0o777)
    (tmp_path / "private").mkdir(mode=0o700)
    relative = tmp_path / "private" / "run"
    relative.symlink_to("../open/run")

    assert changeable_by_others(relative).startswith(f"the directory {open_dir} (mode 0777) ")


def test_a_loop_of_links_is_refused_not_followed_for_ever(tmp_path):
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")

    assert changeable_by_others(tmp_path / "a") == f"{tmp_path / 'a'} goes through more than 40 symbolic links"


def test_a_missing_part_of_the_path_raises(tmp_path):
    with pytest.raises(FileNotFoundError):
        changeable_by_others(tmp_path / "nothing" / "here")
