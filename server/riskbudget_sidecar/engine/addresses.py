"""Listen-address parsing: loopback unless asked otherwise, no abstract sockets."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass

MAX_UNIX_PATH_BYTES = 107
"""The longest unix socket path the OS takes: sun_path is 108 bytes on Linux, one of them the
terminating NUL (gRPC refuses longer paths at bind time)."""


@dataclass(frozen=True, slots=True)
class ListenAddress:
    host: str | None
    port: int | None
    unix_path: str | None

    @property
    def grpc_target(self) -> str:
        if self.unix_path is not None:
            return f"unix:{self.unix_path}"
        host = f"[{self.host}]" if self.host and ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def is_local(self) -> bool:
        """A unix socket or a loopback host: reachable from this machine only."""
        return self.unix_path is not None or ipaddress.ip_address(self.host or "").is_loopback


def parse_listen_address(text: str, *, allow_non_loopback: bool = False) -> ListenAddress:
    """Parse `host:port`, `[v6]:port` or `unix:/absolute/path`; raise ValueError otherwise."""
    if text.startswith("unix:"):
        path = text[len("unix:"):]
        if path.startswith("@") or "\x00" in path:
            raise ValueError("abstract unix sockets are refused; use a path")
        if not path.startswith("/"):
            raise ValueError("a unix socket path must be absolute: unix:/path/to/socket")
        if "%" in path or path.startswith("//"):  # found by a tester: the directory checked was not the one bound
            raise ValueError("a unix socket path may not hold '%' or begin with '//': gRPC reads those as a URI "
                             "(decoding %41 as A), so it would bind another path than the one checked")
        size = len(os.fsencode(path))
        if size > MAX_UNIX_PATH_BYTES:
            raise ValueError(f"the unix socket path is {size} bytes long; the OS takes at most "
                             f"{MAX_UNIX_PATH_BYTES}: use a shorter path")
        return ListenAddress(None, None, path)
    host, sep, port_text = text.rpartition(":")
    if not sep or not port_text.isdigit():
        raise ValueError(f"listen address {text!r} is not host:port or unix:/path")
    port = int(port_text)
    if not 0 <= port <= 65535:
        raise ValueError(f"port {port} is out of range")
    host = host.strip("[]")
    if host == "localhost":
        host = "127.0.0.1"
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"listen host {host!r} must be an IP address or localhost") from None
    if not ip.is_loopback and not allow_non_loopback:
        raise ValueError(
            f"listen host {host} is not loopback; set sidecar.allow_non_loopback to expose it")
    return ListenAddress(host, port, None)


def same_listener(first: ListenAddress, second: ListenAddress) -> bool:
    """Whether two TCP listeners would take the same port: the same fixed port on the same host
    (an IPv4-mapped IPv6 address is its IPv4 one), or on any host of the same family where one
    is a wildcard (0.0.0.0, ::), or on any host at all where one is `::` (dual stack). Port 0
    picks a free port for each, so never clashes; nor does a unix socket."""
    if first.unix_path is not None or second.unix_path is not None or not first.port or first.port != second.port:
        return False
    hosts = [ipaddress.ip_address(address.host or "") for address in (first, second)]
    hosts = [getattr(host, "ipv4_mapped", None) or host for host in hosts]
    if hosts[0] == hosts[1]:
        return True
    if hosts[0].version == hosts[1].version:
        return any(host.is_unspecified for host in hosts)
    return any(host.version == 6 and host.is_unspecified for host in hosts)
