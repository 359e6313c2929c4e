"""Network-less runs: with this folder on PYTHONPATH and CLIPDESK_BLOCK_NETWORK=1, no Python process can reach
a network (IPv4/IPv6 connects and name lookups raise), so a test proves a command works offline.

Python imports ``sitecustomize`` at start-up, before the command's own code; local (AF_UNIX) sockets stay
usable. ``tests/e2e/test_ocr_cli.py`` checks that the block is in place in its subprocesses.
"""

import os
import socket

MESSAGE = "network blocked (CLIPDESK_BLOCK_NETWORK=1)"

if os.environ.get("CLIPDESK_BLOCK_NETWORK") == "1":
    _connect, _connect_ex = socket.socket.connect, socket.socket.connect_ex

    def _guard(sock):
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            raise OSError(MESSAGE)

    def connect(self, address):
        _guard(self)
        return _connect(self, address)

    def connect_ex(self, address):
        _guard(self)
        return _connect_ex(self, address)

    def getaddrinfo(*args, **kwargs):
        raise OSError(MESSAGE)

    socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo = connect, connect_ex, getaddrinfo
