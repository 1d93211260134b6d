"""A real TCP proxy in front of the relay that can lose a response: the request reaches the relay and
is processed, then the connection to the client dies before the answer arrives.  This is the
"502 after persist" case that makes the real client retry a publish with the same Idempotency-Key."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator


class ResponseDroppingProxy:
    """Forwards 127.0.0.1:<port> to ``upstream``; drops the response of the next ``drops`` requests
    whose request line starts with ``match`` (e.g. ``b"POST /api/v1/messages "``)."""

    def __init__(self, upstream_port: int, match: bytes, drops: int = 1) -> None:
        self.upstream_port = upstream_port
        self.match = match
        self.drops = drops
        self.dropped = 0
        # The head of every request that went through, so a test can read the headers of an
        # attempt whose response was dropped.
        self.requests: list[bytes] = []
        self._lock = threading.Lock()
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self.port = int(self._listener.getsockname()[1])
        self._threads: list[threading.Thread] = []
        self._sockets: list[socket.socket] = []
        self._closed = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ResponseDroppingProxy:
        self._spawn(self._accept_loop)
        return self

    def close(self) -> None:
        self._closed = True
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        for s in list(self._sockets):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()
        for t in self._threads:
            t.join(5)

    def _spawn(self, target: object, *args: object) -> None:
        t = threading.Thread(target=target, args=args, daemon=True)  # type: ignore[arg-type]
        self._threads.append(t)
        t.start()

    def _accept_loop(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            self._sockets += [client, upstream]
            doomed = threading.Event()
            self._spawn(self._client_to_upstream, client, upstream, doomed)
            self._spawn(self._upstream_to_client, upstream, client, doomed)

    def _take_drop(self, chunk: bytes) -> bool:
        with self._lock:
            if self.dropped < self.drops and chunk.startswith(self.match):
                self.dropped += 1
                return True
        return False

    def _client_to_upstream(
        self, client: socket.socket, upstream: socket.socket, doomed: threading.Event
    ) -> None:
        for chunk in _chunks(client):
            if chunk.split(b" ", 1)[0] in _METHODS:
                self.requests.append(chunk.split(b"\r\n\r\n", 1)[0])
            if self._take_drop(chunk):
                doomed.set()
            upstream.sendall(chunk)
        with contextlib.suppress(OSError):
            upstream.shutdown(socket.SHUT_WR)

    def _upstream_to_client(
        self, upstream: socket.socket, client: socket.socket, doomed: threading.Event
    ) -> None:
        for chunk in _chunks(upstream):
            if doomed.is_set():
                # The relay has answered; the client never hears it.
                _kill(client)
                _kill(upstream)
                return
            with contextlib.suppress(OSError):
                client.sendall(chunk)
        with contextlib.suppress(OSError):
            client.shutdown(socket.SHUT_WR)


_METHODS = {b"GET", b"POST", b"PUT", b"PATCH", b"DELETE", b"HEAD", b"OPTIONS"}


def header_values(heads: list[bytes], request_line_prefix: bytes, name: bytes) -> list[str]:
    """The value of header ``name`` in each recorded request head starting with the prefix."""
    out: list[str] = []
    for head in heads:
        if head.startswith(request_line_prefix):
            for line in head.split(b"\r\n")[1:]:
                key, _, value = line.partition(b":")
                if key.strip().lower() == name.lower():
                    out.append(value.strip().decode())
    return out


def _chunks(sock: socket.socket) -> Iterator[bytes]:
    while True:
        try:
            data = sock.recv(65536)
        except OSError:
            return
        if not data:
            return
        yield data


def _kill(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
