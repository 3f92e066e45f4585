"""Templates for customers and events: onboarding, birthdays,
anniversaries, webinars, A/B tests."""

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

DEAL_WON = _workflow(
    "Deal won onboarding",
    "When a deal is won: thank the customer, tag them, schedule the kick-off, check in "
    "after a week and ask for a review after a month.",
    [
        _email(
            "send_thank_you",
            "Thank you",
            0,
            0,
            "Welcome aboard!",
            HI + "Thank you for your trust. Here is how we get started.",
        ),
        _node("tag_customer", "add_tag", "Tag customer", 0, 1, tag="customer"),
        _node(
            "kickoff_task",
            "create_task",
            "Kick-off task",
            0,
            2,
            title="Schedule the kick-off call with {{ contact.first_name }}",
            due_in_hours=24,
        ),
        _wait_hours("wait_7_days", "Wait a week", 0, 3, 24 * 7),
        _email(
            "send_check_in",
            "Check-in",
            0,
            4,
            "How is it going?",
            HI + "One week in: anything we can help with?",
        ),
        _wait_hours("wait_30_days", "Wait a month", 0, 5, 24 * 30),
        _email(
            "send_review_request",
            "Review request",
            0,
            6,
            "Would you recommend us?",
            HI + "A short review would mean a lot to us.",
        ),
    ],
    [
        _edge("send_thank_you", "tag_customer"),
        _edge("tag_customer", "kickoff_task"),
        _edge("kickoff_task", "wait_7_days"),
        _edge("wait_7_days", "send_check_in"),
        _edge("send_check_in", "wait_30_days"),
        _edge("wait_30_days", "send_review_request"),
    ],
    [_trigger("deal_won")],
)

BIRTHDAY = _workflow(
    "Birthday greetings",
    "Every year on the contact's birthday (custom field 'birthday'): a greeting with a "
    "gift code, a small score bump, and a reminder a week later if the gift was not used "
    "(tag 'gift-used' when it is).",
    [
        _email(
            "send_birthday",
            "Birthday e-mail",
            0,
            0,
            "Happy birthday, {{ contact.first_name }}!",
            HI + "Happy birthday! Here is a gift code: BIRTHDAY20.",
        ),
        _node("bump_score", "update_contact", "Score +5", 0, 1, fields={"score": "+5"}),
        _wait_hours("wait_7_days", "Wait a week", 0, 2, 24 * 7),
        _node(
            "gift_used",
            "condition",
            "Gift used?",
            0,
            3,
            match="all",
            rules=[{"tag": "gift-used", "op": "has"}],
        ),
        _node("redeemed", "goal", "Gift redeemed", -0.6, 4, goal_value=20),
        _email(
            "send_gift_reminder",
            "Gift reminder",
            0.6,
            4,
            "Your birthday gift expires soon",
            HI + "Your gift code is still waiting for you.",
        ),
    ],
    [
        _edge("send_birthday", "bump_score"),
        _edge("bump_score", "wait_7_days"),
        _edge("wait_7_days", "gift_used"),
        _edge("gift_used", "redeemed", "yes"),
        _edge("gift_used", "send_gift_reminder", "no"),
    ],
    [_trigger("anniversary", field="custom.birthday", at="09:00")],
    goals=[{"name": "Birthday gift redeemed", "node": "redeemed", "goal_value": "20.00"}],
    allow_reentry=True,
)

SIGNUP_ANNIVERSARY = _workflow(
    "Customer anniversary",
    "Every year on the day a contact joined: a thank-you with a loyalty reward, and a "
    "note for the account owner.",
    [
        _email(
            "send_anniversary",
            "Anniversary e-mail",
            0,
            0,
            "Happy anniversary, {{ contact.first_name }}!",
            HI + "Another year together. Thank you! Here is a loyalty reward.",
        ),
        _node("tag_loyal", "add_tag", "Tag loyal", 0, 1, tag="loyal"),
        _node(
            "notify_owner",
            "internal_notification",
            "Tell the team",
            0,
            2,
            message="{{ contact.email }} celebrates another year with us",
            recipients=[],
        ),
    ],
    [_edge("send_anniversary", "tag_loyal"), _edge("tag_loyal", "notify_owner")],
    [_trigger("anniversary", field="created_at", at="10:00")],
    allow_reentry=True,
)

WEBINAR = _workflow(
    "Webinar reminders",
    "After registration (choose the registration form in the trigger; the form fills the "
    "custom field 'webinar_at'): a confirmation, a reminder the day before at 09:00, "
    "another on the day at 08:00, then the recording or the replay.",
    [
        _email(
            "send_confirmation",
            "Confirmation",
            0,
            0,
            "You are registered",
            HI + "See you on {{ contact.custom.webinar_at }}.",
        ),
        _node(
            "wait_day_before",
            "wait_until",
            "Until the day before, 09:00",
            0,
            1,
            field="custom.webinar_at",
            offset_days=-1,
            at="09:00",
        ),
        _email(
            "send_reminder",
            "Reminder (day before)",
            0,
            2,
            "Tomorrow: our webinar",
            HI + "A reminder: the webinar is tomorrow.",
        ),
        _node(
            "wait_day_of",
            "wait_until",
            "Until the day, 08:00",
            0,
            3,
            field="custom.webinar_at",
            offset_days=0,
            at="08:00",
        ),
        _email(
            "send_today",
            "Reminder (today)",
            0,
            4,
            "Today: our webinar",
            HI + "The webinar starts today. Here is your link.",
        ),
        _wait_hours("wait_1_day", "Wait a day", 0, 5, 24),
        _node(
            "attended",
            "condition",
            "Attended?",
            0,
            6,
            match="all",
            rules=[{"tag": "attended", "op": "has"}],
        ),
        _email(
            "send_recording",
            "Recording",
            -0.6,
            7,
            "Thanks for joining",
            HI + "Thanks for joining! Here are the slides and the recording.",
        ),
        _email(
            "send_replay",
            "Replay",
            0.6,
            7,
            "Sorry we missed you",
            HI + "You missed it, but the replay is here.",
        ),
    ],
    [
        _edge("send_confirmation", "wait_day_before"),
        _edge("wait_day_before", "send_reminder"),
        _edge("send_reminder", "wait_day_of"),
        _edge("wait_day_of", "send_today"),
        _edge("send_today", "wait_1_day"),
        _edge("wait_1_day", "attended"),
        _edge("attended", "send_recording", "yes"),
        _edge("attended", "send_replay", "no"),
    ],
    [_trigger("form_submitted")],
)

AB_SUBJECT = _workflow(
    "A/B subject line test",
    "Half the contacts get subject A, half subject B; a click on either within three days "
    "reaches the goal, so the analytics page shows which subject converts better.",
    [
        _node(
            "split",
            "split",
            "A/B split",
            0,
            0,
            variants=[{"name": "A", "weight": 50}, {"name": "B", "weight": 50}],
        ),
        _email(
            "send_a",
            "Subject A",
            -0.6,
            1,
            "Our spring offer is here",
            HI + "Our spring offer: 20% off. https://example.com/offer",
        ),
        _email(
            "send_b",
            "Subject B",
            0.6,
            1,
            "{{ contact.first_name }}, 20% off ends soon",
            HI + "Our spring offer: 20% off. https://example.com/offer",
        ),
        _node(
            "wait_for_click",
            "wait_condition",
            "Clicked within 3 days?",
            0,
            2,
            match="any",
            timeout_hours=72,
            rules=[
                {"event": "email_clicked", "node": "send_a", "op": "happened"},
                {"event": "email_clicked", "node": "send_b", "op": "happened"},
            ],
        ),
        _node("clicked", "goal", "Clicked", -0.6, 3, goal_value=10),
        _node("tag_no_click", "add_tag", "Tag no click", 0.6, 3, tag="no-click"),
    ],
    [
        _edge("split", "send_a", "variant", variant="A"),
        _edge("split", "send_b", "variant", variant="B"),
        _edge("send_a", "wait_for_click"),
        _edge("send_b", "wait_for_click"),
        _edge("wait_for_click", "clicked", "yes"),
        _edge("wait_for_click", "tag_no_click", "timeout"),
    ],
    [_trigger("manual"), _trigger("api")],
    goals=[{"name": "Clicked", "node": "clicked", "goal_value": "10.00"}],
)
