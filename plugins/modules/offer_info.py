#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, voltx engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: offer_info
short_description: Search Vast.ai GPU offers
version_added: 1.0.0
description:
  - Searches the Vast.ai marketplace (C(POST /api/v0/bundles/)) with the filters of the quickstart guide's
    Step 1 and returns the matching offers, ranked.
  - Every returned offer is checked again on the controller against the filters, so an offer the API sent but
    which does not satisfy them (for example above O(max_dph)) is dropped and listed in RV(rejected).
  - This module never changes anything.
author:
  - voltx engineers (@voltx)
options:
  select:
    description:
      - Optional JMESPath expression applied to the ranked offers list; its result is returned as RV(selected).
      - Needs the C(jmespath) Python library on the controller.
    type: str
extends_documentation_fragment:
  - voltx.vastai.vastai
  - voltx.vastai.vastai.offer_filters
  - ansible.builtin.action_common_attributes
"""

EXAMPLES = r"""
- name: Find offers for the guide's Step 1 (RTX 5090, 128 cores, 64 GB RAM, 250 GB disk, CUDA 12.8, <= $0.20/h)
  voltx.vastai.offer_info:
    gpu_name: RTX 5090
    num_gpus: 1
    min_host_cpu_cores: 128
    min_ram_gb: 64
    min_disk_gb: 250
    min_cuda: 12.8
    max_dph: 0.20
    min_reliability: 0.95
  register: found

- name: Show the cheapest one
  ansible.builtin.debug:
    msg: "Offer {{ found.offers[0].id }} at ${{ found.offers[0].dph_total }}/h"
  when: found.offers | length > 0

- name: Interruptible offers from two GPU models, most reliable first, only id and price
  voltx.vastai.offer_info:
    rental_type: interruptible
    query:
      gpu_name:
        in: [RTX 4090, RTX 5090]
      geolocation:
        notin: [CN]
    order: [-reliability, dph_total]
    limit: 20
    select: "[].{id: id, price: dph_total}"
  register: bids
"""

RETURN = r"""
offers:
  description: The offers that satisfy every filter, ranked by O(order) (cheapest first by default).
  returned: always
  type: list
  elements: dict
  sample:
    - id: 24513378
      gpu_name: RTX 5090
      num_gpus: 1
      cpu_cores_effective: 128.0
      cpu_ram: 257000
      disk_space: 1800.5
      cuda_max_good: 12.9
      dph_total: 0.19
      reliability: 0.9975
      verification: verified
query:
  description: The query sent to C(POST /api/v0/bundles/).
  returned: always
  type: dict
  sample:
    verified: {eq: true}
    external: {eq: false}
    rentable: {eq: true}
    gpu_name: {eq: RTX 5090}
    num_gpus: {eq: 1}
    dph_total: {lte: 0.2}
    order: [[dph_total, asc]]
    type: on-demand
    allocated_storage: 250.0
rejected:
  description: Offers the API returned that failed the controller-side re-check, with the reasons.
  returned: always
  type: list
  elements: dict
  sample:
    - id: 111
      problems: ["dph_total=0.35 fails lte 0.2"]
selected:
  description: The result of the O(select) JMESPath expression over RV(offers).
  returned: when O(select) is set
  type: raw
  sample: [{id: 24513378, price: 0.19}]
"""

import traceback

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ..module_utils._base import VastModule, offer_filter_argument_spec, vast_argument_spec
from ..module_utils._offers import select_offers

try:
    import jmespath
    HAS_JMESPATH = True
    JMESPATH_IMPORT_ERROR = None
except ImportError:
    jmespath = None
    HAS_JMESPATH = False
    JMESPATH_IMPORT_ERROR = traceback.format_exc()


class VastOfferInfo(VastModule):
    query = None
    _compiled = None

    def validate(self):
        super(VastOfferInfo, self).validate()
        select = self.module.params.get("select")
        if select is not None:
            if not HAS_JMESPATH:
                self.module.fail_json(msg=missing_required_lib("jmespath"), exception=JMESPATH_IMPORT_ERROR)
            try:
                self._compiled = jmespath.compile(select)
            except jmespath.exceptions.JMESPathError as exc:
                self.fail_option("select", "invalid JMESPath expression: %s" % exc)
        self.query = self.build_offer_query()

    def run(self):
        offers = self.client.search_offers(self.query)
        ranked, rejected = select_offers(offers, self.query)
        self.result.update(offers=ranked, query=self.query, rejected=rejected)
        if self.module.params.get("select") is not None:
            self.result["selected"] = self._compiled.search(ranked)


def argument_spec():
    spec = vast_argument_spec()
    spec.update(offer_filter_argument_spec())
    spec.update(select=dict(type="str"))
    return spec


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    VastOfferInfo(module).execute()


if __name__ == "__main__":
    main()
