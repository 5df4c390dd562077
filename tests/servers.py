"""Real servers on 127.0.0.1 for the tests: an HTTP server that honours Range (with
faults on demand), and moto's S3 server mode."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Faults:
    status: dict[str, list[int]] = field(default_factory=dict)  # path -> statuses to answer first
    delay: float = 0.0  # seconds before answering any request
    abort_after: dict[str, int] = field(default_factory=dict)  # path -> bytes sent before the connection drops
    on_abort: Any = None  # called when a connection is dropped (e.g. to stop the server)
    no_etag: bool = False


class RangeServer:
    """Serves `files` (path -> bytes) with ETag, HEAD and single Range requests."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.faults = Faults()
        self.requests: list[tuple[str, str, str | None]] = []  # (method, path, Range)
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_HEAD(self) -> None:
                self._serve(body=False)

            def do_GET(self) -> None:
                self._serve(body=True)

            def _serve(self, body: bool) -> None:
                server.requests.append((self.command, self.path, self.headers.get("Range")))
                if server.faults.delay:
                    time.sleep(server.faults.delay)
                queued = server.faults.status.get(self.path)
                if queued:
                    self._empty(queued.pop(0))
                    return
                data = server.files.get(self.path)
                if data is None:
                    self._empty(404)
                    return
                start, end, status = 0, len(data), 200
                rng = self.headers.get("Range")
                if rng and rng.startswith("bytes="):
                    first, _, last = rng[6:].partition("-")
                    start = int(first)
                    end = min(int(last) + 1, len(data)) if last else len(data)
                    if start >= len(data):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    status = 206
                self.send_response(status)
                if not server.faults.no_etag:
                    self.send_header("ETag", '"' + hashlib.md5(data).hexdigest() + '"')
                if status == 206:
                    self.send_header("Content-Range", f"bytes {start}-{end - 1}/{len(data)}")
                self.send_header("Content-Length", str(end - start))
                self.end_headers()
                if not body:
                    return
                limit = server.faults.abort_after.get(self.path)
                if limit is not None:
                    self.wfile.write(data[start:min(end, start + limit)])
                    self.wfile.flush()
                    self.close_connection = True
                    if server.faults.on_abort is not None:
                        server.faults.on_abort()
                    self.connection.shutdown(2)
                    return
                self.wfile.write(data[start:end])

            def _empty(self, status: int) -> None:
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.httpd.handle_error = lambda *args: None  # type: ignore[method-assign] # dropped clients are the point
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def stop(self) -> None:
        """Stop answering: the listening socket is closed, so new connections are refused."""
        threading.Thread(target=self.httpd.shutdown, daemon=True).start()
        self.httpd.server_close()


def start_moto() -> tuple[Any, str]:
    """moto's S3 in server mode on 127.0.0.1 (a real HTTP endpoint); returns (server, URL)."""
    import logging

    from moto.server import ThreadedMotoServer
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    return server, f"http://{host}:{port}"


class CountingS3:
    """A second endpoint on moto's in-process S3 (the same buckets as `start_moto`'s) that
    counts the requests it serves, by HTTP method (bench.counting_s3)."""

    def __init__(self) -> None:
        from moto.server import DomainDispatcherApplication, create_backend_app
        from werkzeug.serving import make_server

        from bench.counting_s3 import counting_app
        self.httpd = make_server("127.0.0.1", 0, counting_app(DomainDispatcherApplication(create_backend_app)),
                                 threaded=True)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def gets(self) -> int:
        """GETs served so far."""
        import json
        from urllib.request import urlopen

        from bench.counting_s3 import COUNTS_PATH
        with urlopen(self.url + COUNTS_PATH) as resp:
            return int(json.load(resp)["requests"].get("GET", 0))

    def stop(self) -> None:
        self.httpd.shutdown()
