"""A local HTTP server on 127.0.0.1 that honours `Range: bytes=N-`, and archive fixtures.

The server serves a dict of path → bytes from a thread. It can cut a response after `cut_after`
bytes (a dropped connection: the body is shorter than its Content-Length), ignore ranges, or
pace its writes (`delay_s` per `chunk` bytes) so a client can be killed half-way. Every
request's path and Range header is recorded.
"""

from __future__ import annotations

import io
import tarfile
import threading
import time
import zipfile
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


@dataclass
class Behaviour:
    files: dict[str, bytes]
    cut_after: int | None = None      # bytes of the body sent before closing, on every request
    honour_range: bool = True
    delay_s: float = 0.0              # pause after each chunk
    chunk: int = 4096
    requests: list[tuple[str, str | None]] = field(default_factory=list)


def _handler(behaviour: Behaviour) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:  # keep the test output clean
            return None

        def do_GET(self) -> None:  # noqa: N802 - the http.server API
            rng = self.headers.get("Range")
            behaviour.requests.append((self.path, rng))
            body = behaviour.files.get(self.path)
            if body is None:
                self.send_error(404)
                return
            start = 0
            if rng and behaviour.honour_range:
                start = int(rng.removeprefix("bytes=").rstrip("-"))
                if start >= len(body):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(body)}")
                    self.end_headers()
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
            else:
                self.send_response(200)
            payload = body[start:]
            self.send_header("Content-Length", str(len(payload)))
            self.send_header("Accept-Ranges", "bytes")
            self.end_headers()
            if behaviour.cut_after is not None:
                payload = payload[: behaviour.cut_after]
            for i in range(0, len(payload), behaviour.chunk):
                self.wfile.write(payload[i: i + behaviour.chunk])
                self.wfile.flush()
                if behaviour.delay_s:
                    time.sleep(behaviour.delay_s)
            self.close_connection = True

    return Handler


class RangeServer:
    """`with RangeServer(behaviour) as url: ...` where `url` is `http://127.0.0.1:PORT`."""

    def __init__(self, behaviour: Behaviour) -> None:
        self.behaviour = behaviour
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(behaviour))
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


def tar_gz_of(folder: Path) -> bytes:
    """`folder` (and everything under it) as a gzipped tarball whose top entry is its name."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(folder, arcname=folder.name)
    return buffer.getvalue()


def zip_of(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in files.items():
            z.writestr(name, data)
    return buffer.getvalue()
