"""Whether another user of the host could change what a path names.

A unix socket's directory and a token file are only as private as every directory on the way
to them: a symbolic link or a directory that another user owns, or may write, lets that user
swap what the path names (a socket of their own, approving every order and reading the
client token; a token file of their own, read at the next reload). The rule is OpenSSH's for
its key files, applied along the path as the kernel resolves it.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

MAX_LINKS = 40
"""As the kernel's limit on symbolic links followed in one lookup."""


def changeable_by_others(path: str | Path) -> str | None:
    """Why another user could change what `path` (absolute, existing) names, or None.

    From the root down, following symbolic links: each directory and link on the way, and the
    path itself, must belong to root or to this user, and no directory or file may be writable
    by its group or others, except a sticky directory (as /tmp, where others cannot rename or
    remove an entry that is not theirs). Any group: who is in one cannot be known (a group
    given at run time, or in another container, is listed nowhere), and two reviews found a
    shared group taken for the user's own. An extended ACL granting write shows in the group
    bits. A read-only mount is no exception: a bind mount's source stays writable. Raises
    OSError if a part of the path does not exist.
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
    who = "others" if mode & 0o002 else f"its group ({info.st_gid})"
    return (f"the {kind} {entry} (mode {mode:04o}) may be written by {who}, who could replace what is in it: "
            f"chmod go-w {entry}")
