"""Read a config file: YAML in, a frozen `Config` out, or errors naming file and key path."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import BinaryIO

import yaml
from pydantic import ValidationError

from ..engine.config import Config, FieldError


class ConfigError(Exception):
    """A config file that cannot be used; `errors` has one line per problem."""

    def __init__(self, errors: list[str]):
        super().__init__("\n".join(errors))
        self.errors = errors


def _key_path(location: tuple) -> str:
    return ".".join(str(part).replace("\0", "\\0") for part in location) or "(top level)"


def parse_config(data: object, *, source: str) -> Config:
    """Validate already-parsed data; `source` names the file in error messages."""
    if not isinstance(data, dict):
        raise ConfigError([f"{source}: the top level must be a mapping of sections"])
    try:
        nul = [f"{source}: {_key_path(location)}: holds a NUL character" for location in _nul_strings(data)]
    except RecursionError:  # aliases chained past Python's stack (found by a reviewer)
        raise ConfigError([f"{source}: not valid: nested too deeply"]) from None
    if nul:
        raise ConfigError(nul)  # no path, name or token takes one (found by a reviewer: tracebacks)
    try:
        return Config.model_validate(data)
    except RecursionError:
        raise ConfigError([f"{source}: not valid: nested too deeply"]) from None
    except ValidationError as exc:
        raise ConfigError([
            f"{source}: {_key_path(_location(err))}: {_describe(err)}" for err in exc.errors()
        ]) from None


def _nul_strings(value: object, location: tuple = (), seen: set[int] | None = None) -> list[tuple]:
    """Where in the parsed file a string (or `!!binary` bytes, which become one), or a key, holds
    a NUL character. A node YAML aliases is looked at once, so a cycle ends (found by a reviewer)."""
    if isinstance(value, (str, bytes)):
        return [location] if ("\0" if isinstance(value, str) else b"\0") in value else []
    seen = set() if seen is None else seen
    if id(value) in seen:
        return []
    seen.add(id(value))
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    return [found for key, item in items
            for found in ([(*location, key)] if isinstance(key, str) and "\0" in key
                          else _nul_strings(item, (*location, key), seen))]


def _location(error: dict) -> tuple:
    """Where the error is: its model, and the field in it a FieldError names."""
    cause = error.get("ctx", {}).get("error")
    if isinstance(cause, FieldError):
        return (*error["loc"], *cause.field.split("."))
    return tuple(error["loc"])


def _describe(error: dict) -> str:
    if error["type"] == "extra_forbidden":
        return "unknown key"
    message = error["msg"]
    return message.removeprefix("Value error, ")


class _DuplicateKey(Exception):
    """A mapping gives `path[-1]` twice; the enclosing keys are prepended on the way out."""

    def __init__(self, key: str, first: yaml.Mark, second: yaml.Mark):
        super().__init__(key)
        self.path, self.lines = [key], (first.line + 1, second.line + 1)

    def __str__(self) -> str:
        return f"{_key_path(tuple(self.path))}: duplicate key (lines {self.lines[0]} and {self.lines[1]})"


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice in one mapping (checked as composed, so merge
    keys `<<` may still be overridden), and reports a scalar it cannot convert as bad YAML."""

    def compose_node(self, parent: yaml.Node | None, index: object) -> yaml.Node:
        try:
            return super().compose_node(parent, index)
        except _DuplicateKey as duplicate:  # prepend the key or list index this node is under
            if isinstance(index, yaml.ScalarNode):
                duplicate.path.insert(0, index.value)
            elif isinstance(index, int):
                duplicate.path.insert(0, index)
            raise

    def compose_mapping_node(self, anchor: str | None) -> yaml.MappingNode:
        node = super().compose_mapping_node(anchor)
        seen: dict[tuple[str, str], yaml.Mark] = {}
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                key = (key_node.tag, key_node.value)
                if key in seen:
                    raise _DuplicateKey(key_node.value, seen[key], key_node.start_mark)
                seen[key] = key_node.start_mark
        return node

    def construct_object(self, node: yaml.Node, deep: bool = False) -> object:
        try:
            return super().construct_object(node, deep)
        except (ValueError, TypeError, AttributeError) as exc:  # PyYAML's scalar ones: 2023-02-30
            kind = node.tag.rpartition(":")[2]
            raise yaml.constructor.ConstructorError(
                None, None, f"not a valid {kind}: {exc}", node.start_mark) from None


def open_regular_file(path: str | Path) -> BinaryIO:
    """`path` opened to read, if it is a regular file; OSError otherwise, without waiting on it:
    found by a tester (the config) and a reviewer (a warm-up file), a FIFO's read wedged a
    reload, every later one, and SIGTERM."""
    descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO's open would wait for a writer
    file = os.fdopen(descriptor, "rb")
    if not stat.S_ISREG(os.fstat(descriptor).st_mode):
        file.close()
        raise OSError(errno.EINVAL, "not a regular file")
    return file


def load_config(path: str | Path) -> Config:
    """Load and validate a YAML config file. Whatever is wrong with it (unreadable, not UTF-8,
    not YAML, a duplicate key, an empty file, a bad value) raises ConfigError naming the file."""
    path = Path(path)
    try:
        with open_regular_file(path) as file:
            raw = file.read()
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc.strerror or exc}"]) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ConfigError([f"{path}: not UTF-8 text: byte {raw[exc.start]:#04x} at offset {exc.start} "
                           f"(line {line})"]) from None
    try:
        loader = _StrictLoader(text)  # which refuses a NUL or control character (a torn file's tail) here
    except yaml.YAMLError as exc:
        raise ConfigError([f"{path}: not valid YAML: {exc}"]) from None
    try:
        data = loader.get_single_data()
    except yaml.YAMLError as exc:
        raise ConfigError([f"{path}: not valid YAML: {exc}"]) from None
    except _DuplicateKey as exc:
        raise ConfigError([f"{path}: {exc}"]) from None
    except RecursionError:
        raise ConfigError([f"{path}: not valid YAML: nested too deeply"]) from None
    finally:
        loader.dispose()
    if data is None:
        raise ConfigError([f"{path}: the file is empty"])
    return parse_config(data, source=str(path))


def read_pem(path: str, field: str, kind: str) -> bytes:
    """The file's bytes, if it holds a PEM block of `kind` (a key: RSA, EC or PKCS#8)."""
    try:
        with open_regular_file(path) as file:
            data = file.read()
    except OSError as exc:
        raise ConfigError([f"{field}: cannot read {path}: {exc.strerror or exc}"]) from None
    if f"{kind}-----".encode() not in data:
        raise ConfigError([f"{field}: {path} holds no PEM {kind}"])
    return data
