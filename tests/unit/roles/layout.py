"""The campaign's layout as the roles see it: voltx.vastai.campaign's defaults, their templates rendered."""

import os

import jinja2
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def campaign_defaults():
    """roles/campaign/defaults/main.yml with each "{{ campaign_* }}" reference resolved, as Ansible would."""
    with open(os.path.join(ROOT, "roles", "campaign", "defaults", "main.yml")) as f:
        raw = yaml.safe_load(f)
    env = jinja2.Environment(undefined=jinja2.StrictUndefined)

    def render(value):
        if isinstance(value, str):
            for dummy in range(5):  # defaults refer to other defaults, a few levels deep at most
                value = env.from_string(value).render(raw)
            return value
        if isinstance(value, list):
            return [render(v) for v in value]
        if isinstance(value, dict):
            return {k: render(v) for k, v in value.items()}
        return value

    return {name: render(value) for name, value in raw.items()}
