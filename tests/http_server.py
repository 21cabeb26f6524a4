"""A real HTTP file server on 127.0.0.1 for the download tests, in a thread of the test process.

It serves ``files`` (URL path without the leading ``/`` -> bytes), answers ``Range: bytes=N-``
with 206 and ``Content-Range`` (416 past the end), and can be told to misbehave the way real
servers and networks do: cut the next response short after some bytes (``cut_next``, while still
announcing the full ``Content-Length``), ignore ``Range`` and send the whole file with 200
(``ignore_range``), or send some bytes and then hang until released (``stall_next``, to interrupt
a client mid-download). A missing file is a 404. Every request is recorded (path, Range header,
status, body bytes sent) so a test can check what the client asked for.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Request:
    path: str
    range: str | None
    status: int
    sent: int  # body bytes actually written


class FileServer:
    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.cut_next: list[int] = []  # each request pops one: send only that many body bytes
        self.ignore_range = False
        self.stall_next: int | None = None  # the next response sends this many bytes, then waits
        self.release = threading.Event()  # ... until this is set, and hangs up
        self.requests: list[Request] = []
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._httpd.daemon_threads = True
        # a short poll so that stop() returns at once (serve_forever checks for shutdown every poll)
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.02,), daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def start(self) -> FileServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


def _handler(server: FileServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:  # quiet test output
            pass

        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            path = self.path.lstrip("/")
            range_header = self.headers.get("Range")
            data = server.files.get(path)
            if data is None:
                server.requests.append(Request(path, range_header, 404, 0))
                self.send_error(404)
                return
            start = 0
            if range_header and not server.ignore_range:
                assert range_header.startswith("bytes=") and range_header.endswith("-"), range_header
                start = int(range_header[len("bytes=") : -1])
                if start >= len(data):
                    server.requests.append(Request(path, range_header, 416, 0))
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(data)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
            body = data[start:]
            status = 206 if start else 200
            self.send_response(status)
            if status == 206:
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Accept-Ranges", "bytes")
            self.end_headers()
            if server.cut_next:  # announce everything, send part of it, hang up
                body = body[: server.cut_next.pop(0)]
                self.close_connection = True
            if server.stall_next is not None:
                body, server.stall_next = body[: server.stall_next], None
                server.requests.append(Request(path, range_header, status, len(body)))
                self.wfile.write(body)
                self.wfile.flush()
                server.release.wait(timeout=60)
                self.close_connection = True
                return
            # recorded before the body goes out: the client may be done as soon as it has it
            server.requests.append(Request(path, range_header, status, len(body)))
            self.wfile.write(body)
            self.wfile.flush()

    return Handler
