"""moto's S3 server (in-memory, on 127.0.0.1) that counts the requests it serves, by HTTP
method, with the bytes of their bodies: request counts measured at the server, not by the
client. `GET /__counts__` answers the counts so far as JSON (and is not counted).

    python -m bench.counting_s3 PORT
"""

from __future__ import annotations

import json
import logging
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

COUNTS_PATH = "/__counts__"


def counting_app(app: Callable[..., Iterable[bytes]]) -> Callable[..., Iterable[bytes]]:
    requests: Counter[str] = Counter()
    body_bytes: Counter[str] = Counter()
    lock = threading.Lock()

    def serve(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        method = environ["REQUEST_METHOD"]
        if environ.get("PATH_INFO") == COUNTS_PATH:
            with lock:
                body = json.dumps({"requests": requests, "bytes": body_bytes}).encode()
            start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
            return [body]
        with lock:
            requests[method] += 1
            body_bytes[method] += int(environ.get("CONTENT_LENGTH") or 0)
        return app(environ, start_response)
    return serve


def main(port: int) -> None:
    from moto.server import DomainDispatcherApplication, create_backend_app
    from werkzeug.serving import make_server
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    app = counting_app(DomainDispatcherApplication(create_backend_app))
    make_server("127.0.0.1", port, app, threaded=True).serve_forever()


if __name__ == "__main__":
    main(int(sys.argv[1]))
