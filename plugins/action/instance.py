# -*- coding: utf-8 -*-
# Copyright: (c) 2026, voltx engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Runs voltx.vastai.instance so that Ctrl-C while it rents still says what bills.

On SIGINT, ansible-playbook tells its workers to kill their process group and die, so a module's last words are
never read: an instance rented and still loading would bill with no word of it but "User interrupted execution".
While the module runs, this worker passes SIGINT on to it (the module then fails naming its instances) and waits
for that answer (ansible-playbook waits for its workers before it exits). A worker's own output goes nowhere and the
interrupted playbook prints no more results, so the answer is written to ansible-playbook's output, which Linux
lets a child open as /proc/<parent>/fd/1.
"""

from __future__ import annotations

import os
import signal

from ansible.plugins.action import ActionBase


class ActionModule(ActionBase):
    _supports_check_mode = True
    _supports_async = False

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        interrupted = []

        def interrupt(signum, _frame):
            if not interrupted:
                interrupted.append(signum)
                # The module shares this worker's process group (a local connection); this handler takes the
                # worker's own copy. A SIGTERM (the playbook cleaning up its workers) waits for the module too.
                os.killpg(os.getpgrp(), signal.SIGINT)

        previous = dict((signum, signal.signal(signum, interrupt)) for signum in (signal.SIGINT, signal.SIGTERM))
        try:
            result.update(self._execute_module(module_name="voltx.vastai.instance", module_args=self._task.args,
                                               task_vars=task_vars))
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
        if interrupted:
            tell_the_playbook_output("\nvoltx.vastai.instance [%s]: %s\n" % (
                task_vars.get("inventory_hostname", "?"), result.get("msg", "interrupted")))
        return result


def tell_the_playbook_output(text):
    try:
        output = os.open("/proc/%d/fd/1" % os.getppid(), os.O_WRONLY | os.O_APPEND)
    except OSError:
        return  # not Linux, or ansible-playbook already gone: the result holds the message all the same
    try:
        os.write(output, text.encode("utf-8", "replace"))
    finally:
        os.close(output)
