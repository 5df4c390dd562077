"""What became of writes through the mount that the writer may never see.

A shell's `>` ignores what close() returns, and a drop is imported seconds after its copy
ended; so refusals and drops' results are kept here, in memory, for the mount's status file
(`/.cas/status`) and `cas mount status`. The log has the same lines.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Any

from cas.units import counted

KEPT = 100  # refusals and finished drops kept for the status (the log keeps them all)


class Outcomes:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.started = time.time_ns()
        self.refusals = 0  # since the mount started: `cas mount status` compares it with what it saw
        self._refused: deque[dict[str, Any]] = deque(maxlen=KEPT)
        self._finished: deque[dict[str, Any]] = deque(maxlen=KEPT)

    def refused(self, path: str, message: str) -> None:
        """A write (or a drop) that changed nothing: its path, and the line the log has."""
        with self._lock:
            self.refusals += 1
            self._refused.append({"seq": self.refusals, "at": time.time(), "path": path, "message": message})

    def finished(self, path: str, project: str, summary: str) -> None:
        """A drop imported."""
        with self._lock:
            self._finished.append({"at": time.time(), "path": path, "project": project, "summary": summary})

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {"mount": self.started, "refusals": self.refusals, "refused": list(self._refused),
                    "imported": list(self._finished)}


def render(status: dict[str, Any]) -> str:
    """The status as lines a person reads (the file `/.cas/status`, `cas mount status`)."""
    lines = []
    drops = status.get("drops", [])
    if not drops:
        lines.append("drops: none waiting")
    for d in drops:
        what = f"{counted(d['files'], 'file')}, {counted(d['bytes'], 'byte')}"
        if d["state"] == "failed":
            lines.append(f"failed     {d['path']}: {d['reason']} ({what}; fix it and the import is retried, "
                         "or remove the folder)")
        else:
            into = f"into project {d['project']}" if d["into"] else f"as project {d['project']}"
            lines.append(f"{d['state']:<10} {d['path']} ({what}; imported {into} once it settles)")
    for d in status.get("imported", []):
        lines.append(f"done       {d['path']}: {d['summary']}")
    refused = status.get("refused", [])
    lines.append(f"refused: {status.get('refusals', 0)} since the mount started"
                 + (f", the last {len(refused)}:" if refused else ""))
    for r in refused:
        lines.append(f"  {time.strftime('%H:%M:%S', time.localtime(r['at']))} {r['message']}")
    return "\n".join(lines) + "\n"
