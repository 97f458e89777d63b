"""Fail loudly if code under test connects to (or resolves) anything but loopback.

``loopback_only()`` patches ``socket.socket.connect``/``connect_ex`` and ``socket.getaddrinfo``
for its duration, in this process and every thread of it. A Google client that tried to reach
``*.googleapis.com``, ``oauth2.googleapis.com`` or the metadata server 169.254.169.254 raises
``NonLoopbackConnection`` instead of leaving the machine, which proves the offline set-up works
instead of hoping it does. Unix sockets (multiprocessing, gRPC's local channels) are allowed.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
from typing import Iterator


class NonLoopbackConnection(AssertionError):
    pass


def _is_loopback(host) -> bool:
    if host in ("localhost", "", None):
        return True
    try:
        return ipaddress.ip_address(str(host).split("%")[0]).is_loopback
    except ValueError:
        return False


def install_process_guard() -> None:
    """Install the guard for the whole process, permanently (for subprocess scripts)."""
    _patch()


def _patch():
    real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex
    real_getaddrinfo = socket.getaddrinfo

    def check(sock, address):
        if sock.family in (socket.AF_INET, socket.AF_INET6) and not _is_loopback(address[0]):
            raise NonLoopbackConnection(f"blocked connection to {address!r}: tests stay on 127.0.0.1")

    def connect(sock, address):
        check(sock, address)
        return real_connect(sock, address)

    def connect_ex(sock, address):
        check(sock, address)
        return real_connect_ex(sock, address)

    def getaddrinfo(host, *args, **kwargs):
        if not _is_loopback(host):
            raise NonLoopbackConnection(f"blocked name lookup of {host!r}: tests stay on 127.0.0.1")
        return real_getaddrinfo(host, *args, **kwargs)

    socket.socket.connect, socket.socket.connect_ex = connect, connect_ex
    socket.getaddrinfo = getaddrinfo
    return real_connect, real_connect_ex, real_getaddrinfo


@contextlib.contextmanager
def loopback_only() -> Iterator[None]:
    saved = _patch()
    try:
        yield
    finally:
        socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo = saved
