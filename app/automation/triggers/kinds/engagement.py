"""Trigger types a contact's engagement starts: a form, an e-mail, the site.

Each is one ``register`` call: configuration, family and event filter
(app/automation/triggers/registry.py).
"""

from __future__ import annotations

from pydantic import Field

from app.automation.triggers.base import TriggerConfig, TriggerType, register
from app.automation.triggers.filters import num


class FormConfig(TriggerConfig):
    form_id: int | None = None


def _form(config: dict, data: dict) -> bool:
    wanted = config.get("form_id")
    return wanted is None or num(data.get("form_id")) == num(wanted)


register(
    TriggerType(
        "form_submitted",
        "Form submitted",
        "Forms",
        FormConfig,
        "A contact submits a form.",
        filter=_form,
    )
)


class EmailEventConfig(TriggerConfig):
    # Only events about e-mails sent by this workflow/node, when given.
    workflow_id: int | None = None
    node: str | None = None
    url_contains: str | None = None


class PageConfig(TriggerConfig):
    url_contains: str | None = Field(default=None, max_length=500)


def _url(config: dict, data: dict) -> bool:
    needle = config.get("url_contains")
    if not needle:
        return True
    haystack = data.get("url") or data.get("link_url") or data.get("page_url") or ""
    return str(needle).lower() in str(haystack).lower()


def _email(config: dict, data: dict) -> bool:
    if config.get("workflow_id") is not None and num(data.get("workflow_id")) != num(
        config["workflow_id"]
    ):
        return False
    if config.get("node") and data.get("node") != config["node"]:
        return False
    return _url(config, data)


for _key, _label, _description in [
    ("email_opened", "Email opened", "A contact opens an e-mail."),
    ("email_clicked", "Link clicked", "A contact clicks a link in an e-mail."),
    ("email_replied", "Email replied", "A contact replies to an e-mail."),
    ("email_bounced", "Email bounced", "An e-mail to the contact bounces."),
    (
        "email_complained",
        "Marked as spam",
        "A contact reports an e-mail as spam (a provider's complaint callback).",
    ),
    ("email_unsubscribed", "Unsubscribed", "A contact unsubscribes."),
]:
    register(TriggerType(_key, _label, "Email", EmailEventConfig, _description, filter=_email))


register(
    TriggerType(
        "page_visited",
        "Page visited",
        "Site",
        PageConfig,
        "A known contact visits a page of your site.",
        filter=_url,
    )
)

register(
    TriggerType(
        "site_activity",
        "Site activity",
        "Site",
        PageConfig,
        "Any tracked activity on your site.",
        filter=_url,
    )
)
