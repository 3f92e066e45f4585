"""Templates that win and convert contacts: welcome, nurture, follow-up,
re-engagement."""

from __future__ import annotations

from app.automation.lifecycle.gallery._build import (
    HI,
    _edge,
    _email,
    _node,
    _trigger,
    _wait_hours,
    _workflow,
)

WELCOME = _workflow(
    "Welcome series",
    "Greet new contacts, share a getting-started guide two days later, then tag the "
    "engaged ones and remind the others.",
    [
        _email(
            "send_welcome",
            "Welcome e-mail",
            0,
            0,
            "Welcome, {{ contact.first_name }}!",
            HI + "Thanks for joining us. Here is what to expect.",
        ),
        _wait_hours("wait_2_days", "Wait 2 days", 0, 1, 48),
        _email(
            "send_getting_started",
            "Getting started",
            0,
            2,
            "Getting started in 3 steps",
            HI + "Here are three steps to get the most out of your account.",
        ),
        _wait_hours("wait_3_days", "Wait 3 days", 0, 3, 72),
        _node(
            "opened_guide",
            "condition",
            "Opened the guide?",
            0,
            4,
            match="all",
            rules=[{"event": "email_opened", "node": "send_getting_started", "op": "happened"}],
        ),
        _node("tag_engaged", "add_tag", "Tag engaged", -0.6, 5, tag="engaged"),
        _email(
            "send_reminder",
            "Reminder",
            0.6,
            5,
            "Did you see our guide?",
            HI + "In case you missed it: three steps to get started.",
        ),
    ],
    [
        _edge("send_welcome", "wait_2_days"),
        _edge("wait_2_days", "send_getting_started"),
        _edge("send_getting_started", "wait_3_days"),
        _edge("wait_3_days", "opened_guide"),
        _edge("opened_guide", "tag_engaged", "yes"),
        _edge("opened_guide", "send_reminder", "no"),
    ],
    [_trigger("contact_created")],
)

LEAD_NURTURE = _workflow(
    "Lead nurture with score threshold",
    "When a lead's score reaches 50, mark them as marketing-qualified and nurture them; "
    "hot leads (80+) get a sales task and a deal, the rest more content. Reaching 100 is "
    "the goal.",
    [
        _node("tag_mql", "add_tag", "Tag MQL", 0, 0, tag="mql"),
        _email(
            "send_case_study",
            "Case study",
            0,
            1,
            "How teams like yours grew 3x",
            HI + "Here is how a company like yours got results.",
        ),
        _wait_hours("wait_3_days", "Wait 3 days", 0, 2, 72),
        _node(
            "is_hot",
            "condition",
            "Score 80 or more?",
            0,
            3,
            match="all",
            rules=[{"field": "contact.score", "op": "gte", "value": 80}],
        ),
        _node(
            "sales_task",
            "create_task",
            "Task for sales",
            -0.6,
            4,
            title="Call {{ contact.first_name }} {{ contact.last_name }} (hot lead)",
            due_in_hours=24,
        ),
        _node(
            "open_deal",
            "create_deal",
            "Open a deal",
            -0.6,
            5,
            title="{{ contact.email }}",
            stage="qualified",
            status="open",
        ),
        _email(
            "send_guide",
            "Buyer's guide",
            0.6,
            4,
            "Your buyer's guide",
            HI + "Everything you need to compare your options.",
        ),
        _wait_hours("wait_4_days", "Wait 4 days", 0.6, 5, 96),
        _node("bump_score", "update_contact", "Score +10", 0.6, 6, fields={"score": "+10"}),
        _node(
            "sales_ready",
            "goal",
            "Sales ready (100+)",
            1.6,
            0,
            match="all",
            rules=[{"field": "contact.score", "op": "gte", "value": 100}],
            goal_value=50,
        ),
    ],
    [
        _edge("tag_mql", "send_case_study"),
        _edge("send_case_study", "wait_3_days"),
        _edge("wait_3_days", "is_hot"),
        _edge("is_hot", "sales_task", "yes"),
        _edge("sales_task", "open_deal"),
        _edge("is_hot", "send_guide", "no"),
        _edge("send_guide", "wait_4_days"),
        _edge("wait_4_days", "bump_score"),
    ],
    [_trigger("score_threshold_reached", threshold=50)],
    goals=[{"name": "Sales ready", "node": "sales_ready", "goal_value": "50.00"}],
)

ABANDONED_FORM = _workflow(
    "Abandoned form follow-up",
    "A contact visits the sign-up page but does not finish: nudge them after a day, and "
    "hand them to sales if they still have not signed up two days later. Tag contacts "
    "'signed-up' when they finish (e.g. from the form's workflow).",
    [
        _node(
            "wait_for_signup",
            "wait_condition",
            "Signed up within a day?",
            0,
            0,
            match="all",
            rules=[{"tag": "signed-up", "op": "has"}],
            timeout_hours=24,
        ),
        _email(
            "send_nudge",
            "Nudge",
            0.6,
            1,
            "You are one step away",
            HI + "You started signing up. Finish in one click.",
        ),
        _node(
            "wait_again",
            "wait_condition",
            "Signed up within 2 days?",
            0.6,
            2,
            match="all",
            rules=[{"tag": "signed-up", "op": "has"}],
            timeout_hours=48,
        ),
        _node(
            "sales_task",
            "create_task",
            "Task for sales",
            1.2,
            3,
            title="Help {{ contact.email }} finish signing up",
            due_in_hours=24,
        ),
        _node("signed_up", "goal", "Signed up", -0.6, 3),
    ],
    [
        _edge("wait_for_signup", "signed_up", "yes"),
        _edge("wait_for_signup", "send_nudge", "timeout"),
        _edge("send_nudge", "wait_again"),
        _edge("wait_again", "signed_up", "yes"),
        _edge("wait_again", "sales_task", "timeout"),
    ],
    [_trigger("page_visited", url_contains="/signup")],
    goals=[{"name": "Signed up", "node": "signed_up", "goal_value": "0.00"}],
)

RE_ENGAGEMENT = _workflow(
    "Re-engagement",
    "Contacts tagged 'inactive' get a we-miss-you e-mail; whoever opens or clicks within "
    "a week is re-engaged, the others get a last chance and are tagged for sunsetting.",
    [
        _email(
            "send_we_miss_you",
            "We miss you",
            0,
            0,
            "We miss you, {{ contact.first_name }}",
            HI + "It has been a while. Here is what is new.",
        ),
        _node(
            "wait_for_activity",
            "wait_condition",
            "Opened or clicked within a week?",
            0,
            1,
            match="any",
            timeout_hours=168,
            rules=[
                {"event": "email_opened", "node": "send_we_miss_you", "op": "happened"},
                {"event": "email_clicked", "node": "send_we_miss_you", "op": "happened"},
            ],
        ),
        _node("remove_inactive", "remove_tag", "Remove 'inactive'", -0.6, 2, tag="inactive"),
        _node("tag_reengaged", "add_tag", "Tag re-engaged", -0.6, 3, tag="re-engaged"),
        _email(
            "send_last_chance",
            "Last chance",
            0.6,
            2,
            "Should we stay in touch?",
            HI + "Click here to keep hearing from us.",
        ),
        _wait_hours("wait_3_days", "Wait 3 days", 0.6, 3, 72),
        _node("tag_sunset", "add_tag", "Tag for sunsetting", 0.6, 4, tag="sunset"),
    ],
    [
        _edge("send_we_miss_you", "wait_for_activity"),
        _edge("wait_for_activity", "remove_inactive", "yes"),
        _edge("remove_inactive", "tag_reengaged"),
        _edge("wait_for_activity", "send_last_chance", "timeout"),
        _edge("send_last_chance", "wait_3_days"),
        _edge("wait_3_days", "tag_sunset"),
    ],
    [_trigger("contact_tag_added", tag="inactive")],
)
