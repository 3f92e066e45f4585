"""The templates, in gallery order: import/export documents' ``workflow``
parts (see :mod:`app.automation.lifecycle.portability`)."""

from __future__ import annotations

from app.automation.lifecycle.gallery.customers import (
    AB_SUBJECT,
    BIRTHDAY,
    DEAL_WON,
    SIGNUP_ANNIVERSARY,
    WEBINAR,
)
from app.automation.lifecycle.gallery.growth import (
    ABANDONED_FORM,
    LEAD_NURTURE,
    RE_ENGAGEMENT,
    WELCOME,
)

CATALOG: list[dict] = [
    {"key": "welcome_series", "category": "Onboarding", "workflow": WELCOME},
    {"key": "lead_nurture", "category": "Sales", "workflow": LEAD_NURTURE},
    {"key": "abandoned_form", "category": "Conversion", "workflow": ABANDONED_FORM},
    {"key": "re_engagement", "category": "Retention", "workflow": RE_ENGAGEMENT},
    {"key": "deal_won_onboarding", "category": "Customers", "workflow": DEAL_WON},
    {"key": "birthday", "category": "Engagement", "workflow": BIRTHDAY},
    {"key": "customer_anniversary", "category": "Engagement", "workflow": SIGNUP_ANNIVERSARY},
    {"key": "webinar_reminder", "category": "Events", "workflow": WEBINAR},
    {"key": "ab_subject_test", "category": "Testing", "workflow": AB_SUBJECT},
]
