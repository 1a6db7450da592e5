"""The contract reference (docs/contract.md), generated from the comments in the proto.

Reads a FileDescriptorSet with source info on stdin (`buf build --exclude-imports -o -`: a buf
image is one) and writes Markdown on stdout: every service with its RPCs, every message with
its fields, every enum with its values, each with its comment. An element without a comment is
an error (exit 1, naming each one), so the reference is never silently incomplete; `buf lint`'s
COMMENTS rules say the same earlier.

    npx --no-install buf build --exclude-imports -o - | python tools/contract_reference.py
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass, field

from google.protobuf.descriptor_pb2 import (
    DescriptorProto,
    EnumDescriptorProto,
    FieldDescriptorProto,
    FileDescriptorProto,
    FileDescriptorSet,
)

# Field numbers of the descriptor messages, as SourceCodeInfo paths use them.
FILE_MESSAGES, FILE_ENUMS, FILE_SERVICES = 4, 5, 6
MESSAGE_FIELDS, MESSAGE_NESTED, MESSAGE_ENUMS = 2, 3, 4
ENUM_VALUES = 2
SERVICE_METHODS = 2

SCALAR_TYPES = {
    value: name.removeprefix("TYPE_").lower()
    for name, value in FieldDescriptorProto.Type.items()
    if name not in ("TYPE_MESSAGE", "TYPE_ENUM", "TYPE_GROUP")
}

HEADER = """\
# Contract reference: `{package}`

Generated from the comments in [`proto/`](../proto) by `make contract-docs`
([`tools/contract_reference.py`](../tools/contract_reference.py)); do not edit by hand:
`make test` fails when this file differs from what the proto generates.
"""


class UndocumentedError(Exception):
    """Elements of the contract without a comment."""


@dataclass
class Comments:
    """The leading comment of each element of one file, by its SourceCodeInfo path."""

    file: FileDescriptorProto
    by_path: dict[tuple[int, ...], str] = field(init=False)
    missing: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.by_path = {
            tuple(location.path): " ".join(line.strip() for line in location.leading_comments.splitlines()).strip()
            for location in self.file.source_code_info.location
        }

    def of(self, path: tuple[int, ...], name: str) -> str:
        comment = self.by_path.get(path, "")
        if not comment:
            self.missing.append(f"{self.file.name}: {name}")
        return comment.replace("|", "\\|")


def anchor(name: str) -> str:
    """GitHub's anchor of a heading made of `name`."""
    return name.lower().replace(".", "")


def type_link(field_: FieldDescriptorProto, package: str) -> str:
    if field_.type in SCALAR_TYPES:
        return f"`{SCALAR_TYPES[field_.type]}`"
    name = field_.type_name.lstrip(".")
    if name.startswith(package + "."):
        local = name.removeprefix(package + ".")
        return f"[`{local}`](#{anchor(local)})"
    return f"`{name}`"


def message_link(type_name: str, package: str) -> str:
    local = type_name.lstrip(".").removeprefix(package + ".")
    return f"[`{local}`](#{anchor(local)})"


def services(file: FileDescriptorProto, comments: Comments) -> Iterator[str]:
    for index, service in enumerate(file.service):
        path = (FILE_SERVICES, index)
        yield f"### {service.name}\n\n{comments.of(path, service.name)}\n"
        yield "| RPC | request | reply | description |\n|---|---|---|---|"
        for number, method in enumerate(service.method):
            stream_in = "stream " if method.client_streaming else ""
            stream_out = "stream " if method.server_streaming else ""
            description = comments.of((*path, SERVICE_METHODS, number), f"{service.name}.{method.name}")
            yield (f"| `{method.name}` | {stream_in}{message_link(method.input_type, file.package)} "
                   f"| {stream_out}{message_link(method.output_type, file.package)} | {description} |")
        yield ""


def messages(types: list[DescriptorProto], path: tuple[int, ...], prefix: str, comments: Comments,
             package: str) -> Iterator[str]:
    for index, message in enumerate(types):
        message_path, name = (*path, index), prefix + message.name
        yield f"### {name}\n\n{comments.of(message_path, name)}\n"
        if message.field:
            yield "| field | number | type | description |\n|---|---|---|---|"
        for number, field_ in enumerate(message.field):
            repeated = "repeated " if field_.label == FieldDescriptorProto.LABEL_REPEATED else ""
            description = comments.of((*message_path, MESSAGE_FIELDS, number), f"{name}.{field_.name}")
            yield f"| `{field_.name}` | {field_.number} | {repeated}{type_link(field_, package)} | {description} |"
        yield ""
        yield from enums(message.enum_type, (*message_path, MESSAGE_ENUMS), f"{name}.", comments)
        yield from messages(list(message.nested_type), (*message_path, MESSAGE_NESTED), f"{name}.", comments, package)


def enums(types: list[EnumDescriptorProto], path: tuple[int, ...], prefix: str, comments: Comments) -> Iterator[str]:
    for index, enum in enumerate(types):
        enum_path, name = (*path, index), prefix + enum.name
        yield f"### {name}\n\n{comments.of(enum_path, name)}\n"
        yield "| value | number | description |\n|---|---|---|"
        for number, value in enumerate(enum.value):
            description = comments.of((*enum_path, ENUM_VALUES, number), f"{name}.{value.name}")
            yield f"| `{value.name}` | {value.number} | {description} |"
        yield ""


def reference(descriptors: FileDescriptorSet) -> str:
    files = sorted(descriptors.file, key=lambda file: file.name)
    packages = sorted({file.package for file in files})
    lines = [HEADER.format(package="`, `".join(packages))]
    missing: list[str] = []
    for file in files:
        comments = Comments(file)
        lines.append(f"## {file.name}\n")
        lines.extend(services(file, comments))
        lines.extend(messages(list(file.message_type), (FILE_MESSAGES,), "", comments, file.package))
        lines.extend(enums(list(file.enum_type), (FILE_ENUMS,), "", comments))
        missing.extend(comments.missing)
    if missing:
        raise UndocumentedError("no comment on: " + ", ".join(missing))
    return "\n".join(lines).rstrip() + "\n"


def main() -> int:
    descriptors = FileDescriptorSet.FromString(sys.stdin.buffer.read())
    try:
        sys.stdout.write(reference(descriptors))
    except UndocumentedError as error:
        print(f"contract reference: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
