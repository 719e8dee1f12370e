"""A tracker that appends one JSON object per event to a file in the run's output folder.

Layout: `<run>/tracking/events.jsonl` and, when the run finishes, `<run>/tracking/summary.json`.
Each line has an "event" key:
- "start": name, group, config and environment of the run;
- "metrics": a step (or null) and scalar values;
- "table": name, columns and rows;
- "figure": name and the PNG's path relative to the run folder (the file is not copied);
- "summary": values; "finish": the time the run closed.
Lines are flushed as they are written, so a crashed run keeps every event before the crash.
summary.json is written atomically at the end, with the last value of every summary key.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from avatarjax.io import to_json_compatible, write_json_atomic
from avatarjax.tracking.base import Scalar, Tracker

EVENTS_FILE = Path("tracking") / "events.jsonl"
SUMMARY_FILE = Path("tracking") / "summary.json"


class JsonlTracker(Tracker):
    """Events of one run in `<run_dir>/tracking/events.jsonl`."""

    def __init__(self, run_dir: str | Path, name: str, group: str | None, config: dict, environment: dict,
                 log_originals: bool = False) -> None:
        super().__init__(log_originals)
        self.run_dir = Path(run_dir)
        self.events_path = self.run_dir / EVENTS_FILE
        self.events_path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.events_path.open("a", encoding="utf-8")
        self._summary: dict[str, Scalar] = {}
        self._append({"event": "start", "name": name, "group": group, "config": config,
                      "environment": environment})

    def _append(self, event: dict[str, Any]) -> None:
        event = {"time": round(time.time(), 3), **event}
        self._file.write(json.dumps(to_json_compatible(event), allow_nan=False) + "\n")
        self._file.flush()

    def _write_metrics(self, values, step) -> None:
        self._append({"event": "metrics", "step": step, "values": values})

    def _write_table(self, name, columns, rows) -> None:
        self._append({"event": "table", "name": name, "columns": columns, "rows": rows})

    def _write_figure(self, name, path) -> None:
        try:
            location = path.resolve().relative_to(self.run_dir.resolve()).as_posix()
        except ValueError:
            location = str(path)
        self._append({"event": "figure", "name": name, "path": location})

    def _write_summary(self, values) -> None:
        self._summary.update(values)
        self._append({"event": "summary", "values": values})

    def _close(self) -> None:
        self._append({"event": "finish"})
        self._file.close()
        write_json_atomic(self.run_dir / SUMMARY_FILE, self._summary)


def read_events(run_dir: str | Path) -> list[dict]:
    """Return the events of a run's tracking file, in order."""
    path = Path(run_dir) / EVENTS_FILE
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]
