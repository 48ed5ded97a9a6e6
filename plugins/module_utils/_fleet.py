# -*- coding: utf-8 -*-
# Copyright: (c) 2026, voltx engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Pure fleet-safety rules: which of the account's instances the reaper may destroy, and why.

No Ansible and no HTTP here. Ownership is the label prefix and nothing else: an instance whose label does not
start with it (or has no label) is never a candidate, whatever its status, age or price.
"""

from __future__ import annotations

from ._endpoint import instance_status, to_float, to_int

# actual_status values of an instance that has not come up yet (null is reported as "provisioning").
NOT_YET_UP = frozenset(["provisioning", "scheduling", "created", "loading"])

REASON_STUCK = "stuck_loading"
REASON_STATUS = "status"
REASON_TTL = "ttl"
REASON_BUDGET = "budget"


def owned(inst, label_prefix):
    """True when the instance carries a label that starts with ``label_prefix`` (which must not be empty)."""
    if not label_prefix:
        raise ValueError("label_prefix must not be empty: it is what keeps the reaper off other people's instances")
    label = inst.get("label") if isinstance(inst, dict) else None
    return isinstance(label, str) and label.startswith(label_prefix)


def age_seconds(inst, now):
    start = to_float(inst.get("start_date"))
    return None if start is None else max(0.0, now - start)


def reap_reason(inst, now, loading_timeout, statuses, ttl_hours, max_cost_usd=0):
    """Why an owned instance should be reaped, as ``(reason, detail)``, or None to keep it.

    ``loading_timeout`` in seconds; ``statuses`` the statuses reaped whatever the age; ``ttl_hours`` and
    ``max_cost_usd`` (the instance's price x age) 0 = no limit.
    """
    status = instance_status(inst)
    age = age_seconds(inst, now)
    if status in statuses:
        return REASON_STATUS, "status %s" % status
    if status in NOT_YET_UP and age is not None and age > loading_timeout:
        return REASON_STUCK, "%s for %d s (loading timeout %d s)" % (status, age, loading_timeout)
    if ttl_hours and age is not None and age > ttl_hours * 3600.0:
        return REASON_TTL, "%.1f h old (TTL %g h)" % (age / 3600.0, ttl_hours)
    cost = instance_cost(inst, now)
    if max_cost_usd and cost is not None and cost >= max_cost_usd:
        return REASON_BUDGET, "cost $%.4f (budget $%g)" % (cost, max_cost_usd)
    return None


def instance_cost(inst, now):
    """Dollars the instance has cost so far: the API's price (storage included) x its age."""
    dph = to_float(inst.get("dph_total"))
    age = age_seconds(inst, now)
    return None if dph is None or age is None else dph * age / 3600.0


def reap_plan(instances, now, label_prefix, loading_timeout, statuses, ttl_hours, only_ids=None, max_cost_usd=0):
    """Split the account's instances into (reap [(inst, (reason, detail))], kept [owned, not reaped], foreign count).

    ``only_ids`` (None = no restriction) limits the reaped instances to those ids."""
    reap, kept, foreign = [], [], 0
    allowed = None if only_ids is None else set(only_ids)
    for inst in instances:
        if not owned(inst, label_prefix):
            foreign += 1
            continue
        reason = reap_reason(inst, now, loading_timeout, statuses, ttl_hours, max_cost_usd)
        if reason is None or (allowed is not None and to_int(inst.get("id")) not in allowed):
            kept.append(inst)
            continue
        reap.append((inst, reason))
    return reap, kept, foreign


def summary_line(reaped, kept, foreign, label_prefix, check_mode, failed=()):
    """The one line a cron mail shows."""
    verb = "would destroy" if check_mode else "destroyed"
    dph = sum(entry.get("dph_total") or 0.0 for entry in reaped)
    parts = ["reap: %s %d instance(s)" % (verb, len(reaped))]
    if reaped:
        which = ", ".join("%s #%s: %s, $%.3f/h" % (e["label"], e["id"], e["detail"], e.get("dph_total") or 0.0)
                          for e in reaped)
        parts[0] += " (%s), $%.3f/h in all" % (which, dph)
    parts.append("kept %d of ours" % kept)
    parts.append("ignored %d without the label prefix %r" % (foreign, label_prefix))
    if failed:
        parts.append("FAILED to destroy %s" % ", ".join(str(i) for i in failed))
    return "; ".join(parts)
