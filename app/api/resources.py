"""The rows the API's URLs name by id, so that an unknown id answers 404
before anything about the request's body or query string (400).

A request about a resource that does not exist (or is another firm's) is
answered as such whatever else is wrong with it, as most APIs do: the
client learns first that the id is wrong. :func:`missing_resource` is
asked only when a body or query string was refused, so a valid request
costs nothing more. Every URL variable of the API is in :data:`URL_IDS`,
:data:`URL_NAMES` or :data:`NOT_CHECKED` (a test checks).
"""

from __future__ import annotations

from app.api.errors import ApiError, not_found
from app.automation.lifecycle.gallery import TEMPLATES
from app.models import (
    HOOK_EVENTS,
    ApprovalRequest,
    Audience,
    AudienceEnrollment,
    Contact,
    ContactList,
    Deal,
    Form,
    HookSubscription,
    SendingDomain,
    Suppression,
    Task,
    Topic,
    Workflow,
    WorkflowAnalytics,
    WorkflowComment,
    WorkflowEdge,
    WorkflowExecution,
    WorkflowForecast,
    WorkflowGoal,
    WorkflowNode,
    WorkflowTrigger,
)
from app.tenancy import scoped_get

# URL variable -> (model, the word its 404 uses)
URL_IDS: dict[str, tuple[type, str]] = {
    "workflow_id": (Workflow, "workflow"),
    "execution_id": (WorkflowExecution, "execution"),
    "trigger_id": (WorkflowTrigger, "trigger"),
    "node_pk": (WorkflowNode, "node"),
    "edge_id": (WorkflowEdge, "edge"),
    "goal_id": (WorkflowGoal, "goal"),
    "analytics_id": (WorkflowAnalytics, "analytics"),
    "comment_id": (WorkflowComment, "comment"),
    "approval_id": (ApprovalRequest, "approval request"),
    "contact_id": (Contact, "contact"),
    "list_id": (ContactList, "list"),
    "form_id": (Form, "form"),
    "deal_id": (Deal, "deal"),
    "task_id": (Task, "task"),
    "suppression_id": (Suppression, "suppression"),
    "topic_id": (Topic, "topic"),
    "domain_id": (SendingDomain, "sending domain"),
    "forecast_id": (WorkflowForecast, "forecast"),
    "audience_id": (Audience, "audience"),
    "enrollment_id": (AudienceEnrollment, "enrollment"),
    "subscription_id": (HookSubscription, "subscription"),
}
# URL variables that name something by a key: variable -> (is it known?, word)
URL_NAMES = {
    "key": (lambda key: key in TEMPLATES, "template"),
    "event": (lambda event: event in HOOK_EVENTS, "event"),
}
# URL variables that name no row on their own (a version's number within
# its workflow, a tag's name on a contact): their routes take no body or
# query string, so the view's own lookup answers first anyway.
NOT_CHECKED = frozenset({"number", "tag"})


def missing_resource(url_values: dict) -> ApiError | None:
    """The 404 for the first id in the URL that names no row of the current
    firm, or None when they all exist."""
    for name, value in url_values.items():
        if name in URL_IDS:
            model, what = URL_IDS[name]
            if scoped_get(model, value) is None:
                return not_found(what)
        elif name in URL_NAMES:
            known, what = URL_NAMES[name]
            if not known(value):
                return not_found(what)
    return None
