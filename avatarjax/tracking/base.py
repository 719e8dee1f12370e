"""The tracker interface: what a run may send to an experiment tracker, and the privacy rule.

A tracker receives, per run: the config and the environment when it starts, scalar metrics
(optionally against a step), tables, figures and a final summary. Implementations define
how each is stored. The checks are in this class, so every tracker applies the same rules:

- Privacy: a figure or a table marked `shows_originals` is dropped, with an INFO line, unless
  the run set `log_originals=true`. The original-to-avatar link is never passed to a tracker.
- Metric values must be finite numbers or booleans. A non-finite value is logged as None in
  the summary and skipped in step logs, because W&B charts reject NaN.
"""

from __future__ import annotations

import logging
import math
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

Scalar = float | int | bool | str | None


def _clean_scalar(name: str, value: Any) -> Scalar:
    """Return value as a plain Python scalar; raise TypeError for arrays and other objects."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if hasattr(value, "item") and getattr(value, "ndim", 0) == 0:
        value = value.item()
    if isinstance(value, (int, float)):
        return value if math.isfinite(value) else None
    raise TypeError(f"metric {name!r} is a {type(value).__name__}; trackers take scalars only, not arrays.")


class Tracker(ABC):
    """Base class of the trackers. Subclasses implement the `_write_*` methods and `_close`."""

    def __init__(self, log_originals: bool = False) -> None:
        self.log_originals = log_originals
        self.dropped: list[str] = []  # names of figures and tables withheld for privacy
        self._finished = False

    def log_metrics(self, values: Mapping[str, Any], step: int | None = None) -> None:
        """Record scalar metrics; `step` orders repeated metrics such as a loss per epoch."""
        clean = {name: _clean_scalar(name, value) for name, value in values.items()}
        clean = {name: value for name, value in clean.items() if value is not None}
        if clean:
            self._write_metrics(clean, step)

    def log_table(self, name: str, columns: Sequence[str], rows: Sequence[Sequence[Any]],
                  shows_originals: bool = False) -> None:
        """Record a table of scalars, unless it shows originals and the run did not allow that."""
        if self._withheld(name, shows_originals):
            return
        width = len(columns)
        clean_rows = []
        for row in rows:
            if len(row) != width:
                raise ValueError(f"table {name!r}: a row has {len(row)} cells for {width} columns {list(columns)}.")
            clean_rows.append([_clean_scalar(f"{name}.{column}", cell) for column, cell in zip(columns, row)])
        self._write_table(name, list(columns), clean_rows)

    def log_figure(self, name: str, path: str | Path, shows_originals: bool = False) -> None:
        """Record a PNG figure, unless it shows originals and the run did not allow that."""
        if self._withheld(name, shows_originals):
            return
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"figure {name!r}: {path} does not exist; draw it before logging it.")
        self._write_figure(name, path)

    def summary(self, values: Mapping[str, Any]) -> None:
        """Record final values of the run (one value per name; a later call overwrites)."""
        self._write_summary({name: _clean_scalar(name, value) for name, value in values.items()})

    def finish(self) -> None:
        """Close the run; further calls do nothing."""
        if not self._finished:
            self._finished = True
            if self.dropped:
                logger.info("Kept %d figures or tables that show original series out of the tracker: %s. "
                            "Set log_originals=true to send them.", len(self.dropped), ", ".join(self.dropped))
            self._close()

    def __enter__(self) -> "Tracker":
        return self

    def __exit__(self, *exc_info) -> None:
        self.finish()

    def _withheld(self, name: str, shows_originals: bool) -> bool:
        if shows_originals and not self.log_originals:
            self.dropped.append(name)
            return True
        return False

    @abstractmethod
    def _write_metrics(self, values: dict[str, Scalar], step: int | None) -> None: ...

    @abstractmethod
    def _write_table(self, name: str, columns: list[str], rows: list[list[Scalar]]) -> None: ...

    @abstractmethod
    def _write_figure(self, name: str, path: Path) -> None: ...

    @abstractmethod
    def _write_summary(self, values: dict[str, Scalar]) -> None: ...

    @abstractmethod
    def _close(self) -> None: ...


class NullTracker(Tracker):
    """Tracker of `logger=none`: applies the checks and stores nothing."""

    def _write_metrics(self, values, step) -> None:
        pass

    def _write_table(self, name, columns, rows) -> None:
        pass

    def _write_figure(self, name, path) -> None:
        pass

    def _write_summary(self, values) -> None:
        pass

    def _close(self) -> None:
        pass
