"""Writes one JSON line per finished task result (with loop items) to $BENCH_TIMELINE, for `make bench`."""

import json
import os
import time

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
name: bench_timeline
type: aggregate
short_description: task end times for make bench
description: One JSON line per task result, written to the file named by BENCH_TIMELINE.
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "bench_timeline"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super().__init__()
        self.path = os.environ.get("BENCH_TIMELINE")

    def _write(self, result, status):
        if not self.path:
            return
        task = result._task  # pylint: disable=protected-access
        role = task._role.get_name(include_role_fqcn=False) if task._role else ""  # pylint: disable=protected-access
        record = {"t": time.time(), "host": result._host.get_name(),  # pylint: disable=protected-access
                  "role": role, "task": task.get_name(), "action": task.action, "status": status,
                  "delegated": bool(task.delegate_to)}
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")

    def v2_runner_on_ok(self, result):
        self._write(result, "changed" if result._result.get("changed") else "ok")  # pylint: disable=protected-access

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._write(result, "failed")

    def v2_runner_on_skipped(self, result):
        self._write(result, "skipped")

    def v2_runner_item_on_ok(self, result):
        self._write(result, "item")
