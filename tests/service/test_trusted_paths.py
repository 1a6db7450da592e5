"""`changeable_by_others`: whether another user of the host could change what a path names."""

from __future__ import annotations

import grp
import os
import pwd

import pytest

from riskbudget_sidecar.service import trusted_paths
from riskbudget_sidecar.service.trusted_paths import changeable_by_others

OTHER_UID = 65534
ME = pwd.getpwuid(os.geteuid()).pw_name


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


@pytest.mark.parametrize("mode", [0o777, 0o757, 0o703])
def test_a_directory_others_may_write_on_the_way_is_named(tmp_path, mode):
    shared = tmp_path / "shared"
    (shared / "run").mkdir(parents=True)
    shared.chmod(mode)

    assert changeable_by_others(shared / "run") == (
        f"the directory {shared} (mode {mode:04o}) may be written by others, who could replace what is in it")


@pytest.fixture
def groups(monkeypatch):
    """`groups(gid, members=..., primary_of=...)`: the group database as the check reads it."""
    known: dict[int, tuple[list[str], list[str]]] = {}

    def getgrgid(gid):
        if gid not in known:
            raise KeyError(gid)
        return grp.struct_group(("g", "x", gid, known[gid][0]))

    def getpwall():
        users = [pwd.struct_passwd((ME, "x", os.geteuid(), 99999, "", "/", "/bin/sh")),
                 pwd.struct_passwd(("root", "x", 0, 99998, "", "/", "/bin/sh"))]
        return users + [pwd.struct_passwd((name, "x", 70000 + n, gid, "", "/", "/bin/sh"))
                        for gid, (_, primary) in known.items() for n, name in enumerate(primary)]

    monkeypatch.setattr(trusted_paths.grp, "getgrgid", getgrgid)
    monkeypatch.setattr(trusted_paths.pwd, "getpwall", getpwall)

    def define(gid: int, *, members: tuple[str, ...] = (), primary_of: tuple[str, ...] = ()) -> None:
        known[gid] = (list(members), list(primary_of))
    return define


@pytest.mark.parametrize("members, primary_of, trusted", [
    ((), (), True), ((ME,), (), True), (("root",), (), True), (("bob",), (), False), ((), ("bob",), False),
], ids=["no one else", "only this user", "root", "another member", "another's primary group"])
def test_a_directory_this_processs_group_may_write_is_trusted_only_if_no_one_else_is_in_it(
        tmp_path, groups, members, primary_of, trusted):
    """Under umask 002 a user's directories are writable by the user's private group: that is no
    other user. A group shared with another user is (found by a reviewer)."""
    shared = tmp_path / "shared"
    (shared / "run").mkdir(parents=True)
    shared.chmod(0o775)
    groups(os.getegid(), members=members, primary_of=primary_of)

    problem = changeable_by_others(shared / "run")

    assert problem is None if trusted else problem == (
        f"the directory {shared} (mode 0775) may be written by group {os.getegid()}, which has other members, "
        "who could replace what is in it")


def test_a_directory_another_group_may_write_is_named_whatever_its_members(tmp_path, seen_as, groups):
    """Found by a reviewer: a group with no member listed was trusted, but groups given at run time
    (systemd's SupplementaryGroups, Docker's group_add) are listed nowhere."""
    shared = tmp_path / "shared"
    (shared / "run").mkdir(parents=True)
    shared.chmod(0o775)
    seen_as(shared, gid=4242)
    groups(4242)

    assert changeable_by_others(shared / "run") == (
        f"the directory {shared} (mode 0775) may be written by group 4242, not this process's own, who could "
        "replace what is in it")


def test_this_processs_own_group_unknown_to_the_system_is_not_trusted(tmp_path, groups):
    """Found by a reviewer: an unlisted gid was taken for the user's private group, but another
    workload given the same gid at run time (Kubernetes' runAsGroup) rewrote a 0660 token file."""
    shared = tmp_path / "shared"
    (shared / "run").mkdir(parents=True)
    shared.chmod(0o775)

    assert changeable_by_others(shared / "run") == (
        f"the directory {shared} (mode 0775) may be written by group {os.getegid()}, which this system does not "
        "list, so its members cannot be known, who could replace what is in it")


def test_a_directory_with_an_acl_is_named_though_its_group_is_private(tmp_path, groups, monkeypatch):
    """Found by a reviewer: an ACL naming another user with write showed as group bits of the
    sidecar's own group, and that user swapped the socket's directory."""
    shared = tmp_path / "shared"
    (shared / "run").mkdir(parents=True)
    shared.chmod(0o775)
    groups(os.getegid())
    real_getxattr = os.getxattr

    def getxattr(path, name, *, follow_symlinks=True):
        if os.fspath(path) == os.fspath(shared) and name == trusted_paths.ACCESS_ACL:
            return b"\x02\x00\x00\x00"
        return real_getxattr(path, name, follow_symlinks=follow_symlinks)
    monkeypatch.setattr(trusted_paths.os, "getxattr", getxattr)

    assert changeable_by_others(shared / "run") == (
        f"the directory {shared} (mode 0775) may be written by the users and groups its ACL names, who could "
        "replace what is in it")


@pytest.mark.parametrize("mode", [0o666, 0o622])
def test_a_file_others_may_write_is_named(tmp_path, mode):
    """Found by a reviewer: a token file of 0666 was only warned of, and another user wrote their
    token into it for the next reload."""
    token = tmp_path / "token"
    token.write_text("t")
    token.chmod(mode)

    assert changeable_by_others(token) == (
        f"the file {token} (mode {mode:04o}) may be written by others, who could replace what is in it")


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
