"""Read a config file: YAML in, a frozen `Config` out, or errors naming file and key path."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import ValidationError

from ..engine.config import Config


class ConfigError(Exception):
    """A config file that cannot be used; `errors` has one line per problem."""

    def __init__(self, errors: list[str]):
        super().__init__("\n".join(errors))
        self.errors = errors


def _key_path(location: tuple) -> str:
    return ".".join(str(part) for part in location) or "(top level)"


def parse_config(data: object, *, source: str) -> Config:
    """Validate already-parsed data; `source` names the file in error messages."""
    if not isinstance(data, dict):
        raise ConfigError([f"{source}: the top level must be a mapping of sections"])
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError([
            f"{source}: {_key_path(err['loc'])}: {_describe(err)}" for err in exc.errors()
        ]) from None


def _describe(error: dict) -> str:
    if error["type"] == "extra_forbidden":
        return "unknown key"
    message = error["msg"]
    return message.removeprefix("Value error, ")


def load_config(path: str | Path) -> Config:
    """Load and validate a YAML config file. A truncated or empty file is refused."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc.strerror or exc}"]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError([f"{path}: not valid YAML: {exc}"]) from None
    if data is None:
        raise ConfigError([f"{path}: the file is empty"])
    return parse_config(data, source=str(path))


def read_pem(path: str, field: str, kind: str) -> bytes:
    """The file's bytes, if it holds a PEM block of `kind` (a key: RSA, EC or PKCS#8)."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError([f"{field}: cannot read {path}: {exc.strerror or exc}"]) from None
    if f"{kind}-----".encode() not in data:
        raise ConfigError([f"{field}: {path} holds no PEM {kind}"])
    return data
