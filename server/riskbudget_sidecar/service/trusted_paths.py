"""Whether another user of the host could change what a path names.

A unix socket's directory and a token file are only as private as every directory on the way
to them: a symbolic link or a directory that another user owns, or may write, lets that user
swap what the path names (a socket of their own, approving every order and reading the
client token; a token file of their own, read at the next reload). The rule is OpenSSH's for
its key files, applied along the path as the kernel resolves it.
"""

from __future__ import annotations

import errno
import grp
import os
import pwd
import stat
from pathlib import Path

MAX_LINKS = 40
"""As the kernel's limit on symbolic links followed in one lookup."""
ACCESS_ACL = "system.posix_acl_access"
"""Where Linux keeps an entry's extended access ACL (none: its mode says it all)."""


def changeable_by_others(path: str | Path) -> str | None:
    """Why another user could change what `path` (absolute, existing) names, or None.

    From the root down, following symbolic links: each directory and link on the way, and the
    path itself, must belong to root or to this user, and no directory or file may be writable
    by others, by a group other than this process's own, by this process's group if another user
    is listed in it, or through an extended ACL; a sticky directory (as /tmp, where others cannot
    rename or remove an entry that is not theirs) may be. A read-only mount is no exception: a
    bind mount's source stays writable. Raises OSError if a part of the path does not exist.
    """
    remaining = list(Path(path).parts)
    current, links = Path("/"), 0
    problem = _problem(current, os.lstat(current))
    while problem is None and remaining:
        name = remaining.pop(0)
        if name == "/":
            current = Path("/")
            continue
        if name == "..":
            current = current.parent
            continue
        entry = current / name
        info = os.lstat(entry)
        problem = _problem(entry, info)
        if problem is None and stat.S_ISLNK(info.st_mode):
            links += 1
            if links > MAX_LINKS:
                return f"{path} goes through more than {MAX_LINKS} symbolic links"
            remaining[:0] = Path(os.readlink(entry)).parts
        elif problem is None:
            current = entry
    return problem


def _problem(entry: Path, info: os.stat_result) -> str | None:
    link = stat.S_ISLNK(info.st_mode)
    kind = "symbolic link" if link else "directory" if stat.S_ISDIR(info.st_mode) else "file"
    if info.st_uid not in (0, os.geteuid()):
        return f"the {kind} {entry} belongs to another user (uid {info.st_uid}), who could replace what it names"
    mode = stat.S_IMODE(info.st_mode)
    if link or (stat.S_ISDIR(info.st_mode) and mode & stat.S_ISVTX) or not mode & 0o022:
        return None
    if mode & 0o002:
        who = "others"
    elif info.st_gid != os.getegid():
        who = f"group {info.st_gid}, not this process's own"
    elif (members := _other_members(info.st_gid)) is not None:
        who = f"group {info.st_gid}, {members}"
    elif _has_access_acl(entry):
        who = "the users and groups its ACL names"
    else:
        return None  # this user's private group, as under umask 002
    return f"the {kind} {entry} (mode {mode:04o}) may be written by {who}, who could replace what is in it"


def _other_members(gid: int) -> str | None:
    """What says another user (than this one or root) may be in this process's group `gid`, by
    its list or as their primary group (found by a reviewer: a group shared with another user was
    taken for this user's own); None if none. A group the system does not list may have any
    member (Kubernetes' runAsGroup, `docker --user uid:gid`), as may one given at run time
    (systemd's SupplementaryGroups, Docker's group_add): hence only this process's own group, and
    only a listed one, is ever trusted."""
    try:
        members = set(grp.getgrgid(gid).gr_mem)
    except KeyError:
        return "which this system does not list, so its members cannot be known"
    users = pwd.getpwall()
    with_it = {user.pw_name for user in users if user.pw_gid == gid}
    trusted = {user.pw_name for user in users if user.pw_uid in (0, os.geteuid())}
    return "which has other members" if (members | with_it) - trusted else None


def _has_access_acl(path: Path) -> bool:
    """Whether `path` has an extended ACL: its group bits are then the mask of named users' and
    groups' grants (found by a reviewer: a user named in one swapped the socket's directory)."""
    try:
        os.getxattr(path, ACCESS_ACL, follow_symlinks=False)
    except OSError as error:
        if error.errno in (errno.ENODATA, errno.ENOTSUP, errno.EOPNOTSUPP):
            return False
        raise
    return True
