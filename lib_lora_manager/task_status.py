"""The status of a background task (a scan, an image import) as every process sharing the
database sees it: the CLI after a server's scan, SDNext after a CLI's import.

Two State rows per task: ``<name>_running`` (the process running it now) and ``last_<name>``
(how the last run ended). A process shows its own status while it runs the task, another
process's while that one runs it (unless it died), and the last run's outcome when that is newer
than its own.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any, TypeVar

from .models import State
from .store import Store

log = logging.getLogger("lora_manager")


@dataclass
class TaskStatus:
    running: bool = False
    fraction: float = 0.0
    message: str = "never run"
    started_at: float | None = None
    finished_at: float | None = None
    last_report: dict[str, Any] | None = None
    error: str | None = None  # why the last run failed, None when it did not


S = TypeVar("S", bound=TaskStatus)


class SharedStatus:
    def __init__(self, store: Store, name: str, *, elsewhere: str, done: str):
        self.store = store
        self._running, self._last = f"{name}_running", f"last_{name}"
        self._elsewhere, self._done = elsewhere, done  # "a scan is running in another process", "scanned"

    def started(self, started_at: float) -> None:
        value = json.dumps({"owner": self.store.processes.id, "started_at": started_at})
        self.store.db.transaction(lambda session: session.merge(State(key=self._running, value=value)))

    def ended(self, status: TaskStatus) -> None:
        value = json.dumps({"started_at": status.started_at, "finished_at": status.finished_at, "message": status.message,
                            "error": status.error, "report": status.last_report if status.error is None else None})
        owner = self.store.processes.id

        def work(session) -> None:
            session.merge(State(key=self._last, value=value))
            running = session.get(State, self._running)
            if running is not None and _json_object(running.value).get("owner") == owner:
                session.delete(running)
        try:
            self.store.db.transaction(work)
        except Exception as e:  # noqa: BLE001 - the task's outcome stands; only other processes see less
            log.warning("LoRA Manager: cannot record how %s ended: %s", self._last.removeprefix("last_"), e)

    def seen(self, own: S) -> S:
        """``own`` (this process's status), unless another process sharing the database runs the
        task now or ran it since: then theirs, as the same kind of status."""
        if own.running:
            return own
        with self.store.db.read() as session:
            running, last = session.get(State, self._running), session.get(State, self._last)
            running, last = _json_object(running and running.value), _json_object(last and last.value)
        owner = running.get("owner")
        if owner and owner != self.store.processes.id and not self.store.processes.gone([owner]):
            return type(own)(running=True, message=self._elsewhere, started_at=_number(running.get("started_at")))
        finished = _number(last.get("finished_at"))
        if not last or (own.finished_at is not None and (finished is None or finished <= own.finished_at)):
            return own
        if "message" not in last:  # a scan recorded before outcomes were: the bare report
            last = {"report": last, "message": f"{self._done} before (by an older version)"}
        report, message, error = last.get("report"), last.get("message"), last.get("error")
        return type(own)(running=False, fraction=1.0, message=message if isinstance(message, str) else self._done,
                         started_at=_number(last.get("started_at")), finished_at=finished,
                         last_report=report if isinstance(report, dict) else None,
                         error=error if isinstance(error, str) else None)


def _json_object(text: str | None) -> dict:
    """A stored JSON object; anything else (absent, damaged) is empty."""
    try:
        value = json.loads(text) if text else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
