"""All models, imported here so Alembic and the app see the whole schema."""

from app.models.accounts import ROLES, ApiToken, Firm, User
from app.models.analytics import (
    SplitDecision,
    WorkflowAnalytics,
    WorkflowForecast,
    WorkflowGoal,
)
from app.models.audiences import Audience, AudienceEnrollment, audience_members
from app.models.audit import AuditLog
from app.models.collaboration import ApprovalRequest, WorkflowComment
from app.models.consent import ConsentRecord, PendingSignup
from app.models.crm import (
    Contact,
    ContactList,
    Deal,
    Form,
    FormSubmission,
    Notification,
    Tag,
    Task,
    contact_tags,
    list_members,
)
from app.models.delivery import (
    EventKey,
    EventLog,
    OutboxMessage,
    SiteVisit,
    TrackingEvent,
    TrackingHit,
)
from app.models.edit_history import WorkflowEdit
from app.models.execution import ContactFlowState, DeadLetter, WorkflowExecution
from app.models.hooks import HOOK_EVENTS, HookDelivery, HookSubscription
from app.models.imports import ContactImport, ContactImportChunk, ContactImportError
from app.models.operations import HealthAlert
from app.models.sending import (
    SendingDomain,
    SendRateSlot,
    Suppression,
    Topic,
    contact_subscriptions,
)
from app.models.sessions import UserSession
from app.models.workflow import (
    PublishedTrigger,
    Workflow,
    WorkflowEdge,
    WorkflowNode,
    WorkflowTrigger,
    WorkflowVersion,
)

__all__ = [
    "ROLES",
    "ApiToken",
    "ApprovalRequest",
    "Audience",
    "AudienceEnrollment",
    "AuditLog",
    "ConsentRecord",
    "Contact",
    "ContactFlowState",
    "ContactImport",
    "ContactImportChunk",
    "ContactImportError",
    "ContactList",
    "DeadLetter",
    "Deal",
    "EventKey",
    "EventLog",
    "Firm",
    "Form",
    "FormSubmission",
    "HOOK_EVENTS",
    "HealthAlert",
    "HookDelivery",
    "HookSubscription",
    "Notification",
    "OutboxMessage",
    "PendingSignup",
    "PublishedTrigger",
    "SendingDomain",
    "SiteVisit",
    "SplitDecision",
    "Tag",
    "SendRateSlot",
    "Suppression",
    "Task",
    "Topic",
    "TrackingEvent",
    "TrackingHit",
    "User",
    "UserSession",
    "Workflow",
    "WorkflowAnalytics",
    "WorkflowComment",
    "WorkflowEdge",
    "WorkflowEdit",
    "WorkflowExecution",
    "WorkflowForecast",
    "WorkflowGoal",
    "WorkflowNode",
    "WorkflowTrigger",
    "WorkflowVersion",
    "contact_subscriptions",
    "audience_members",
    "contact_tags",
    "list_members",
]
