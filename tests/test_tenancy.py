"""Tenancy is enforced in one place: no query shows another firm's rows."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from sqlalchemy import delete, func, select, update

from app.clock import now
from app.extensions import db
from app.models import (
    ApiToken,
    ApprovalRequest,
    AuditLog,
    ConsentRecord,
    Contact,
    ContactFlowState,
    ContactImport,
    ContactImportChunk,
    ContactImportError,
    ContactList,
    DeadLetter,
    Deal,
    EventKey,
    EventLog,
    Form,
    FormSubmission,
    HookDelivery,
    HookSubscription,
    Notification,
    OutboxMessage,
    PendingSignup,
    PublishedTrigger,
    SendingDomain,
    SiteVisit,
    SplitDecision,
    Suppression,
    Tag,
    Task,
    Topic,
    TrackingEvent,
    TrackingHit,
    User,
    Workflow,
    WorkflowAnalytics,
    WorkflowComment,
    WorkflowEdge,
    WorkflowEdit,
    WorkflowExecution,
    WorkflowForecast,
    WorkflowGoal,
    WorkflowNode,
    WorkflowTrigger,
    WorkflowVersion,
)
from app.models.audiences import Audience, AudienceEnrollment
from app.models.sessions import UserSession
from app.tenancy import FirmScoped, TenancyError, firm_context
from tests.factories import make_firm, make_user


def populate(firm) -> dict[type, object]:
    """One row of every firm-owned model, all belonging to ``firm``."""
    user = make_user(firm, f"owner-{firm.id}@example.com", role="admin")
    rows: dict[type, object] = {User: user}
    with firm_context(firm.id):
        token, _ = ApiToken.issue(user)
        tag = Tag(name="vip")
        contact_list = ContactList(name="Newsletter")
        contact = Contact(email=f"c-{firm.id}@example.com", tags=[tag], lists=[contact_list])
        form = Form(name="Signup", fields=[])
        workflow = Workflow(name=f"Flow of {firm.name}")
        audience = Audience(name="Everyone", rules=[])
        db.session.add_all([tag, contact_list, contact, form, workflow, audience])
        db.session.flush()
        source = WorkflowNode(workflow_id=workflow.id, node_id="a", node_type="add_tag")
        target = WorkflowNode(workflow_id=workflow.id, node_id="b", node_type="goal")
        db.session.add_all([source, target])
        db.session.flush()
        execution = WorkflowExecution(
            workflow_id=workflow.id, contact_id=contact.id, idempotency_key=f"key-{firm.id}"
        )
        db.session.add(execution)
        db.session.flush()
        outbox = OutboxMessage(
            execution_id=execution.id, node_id="a", channel="email", message_id=f"m-{firm.id}"
        )
        contact_import = ContactImport(user_id=user.id, filename="people.csv")
        hook = HookSubscription(target_url="https://hooks.example/in", event="goal.reached")
        db.session.add_all([outbox, contact_import, hook])
        db.session.flush()
        rows.update(
            {
                ApiToken: token,
                Tag: tag,
                ContactList: contact_list,
                Contact: contact,
                Form: form,
                Workflow: workflow,
                WorkflowNode: source,
                WorkflowEdge: WorkflowEdge(
                    workflow_id=workflow.id, source_node_id=source.id, target_node_id=target.id
                ),
                WorkflowTrigger: WorkflowTrigger(workflow_id=workflow.id, trigger_type="manual"),
                PublishedTrigger: PublishedTrigger(workflow_id=workflow.id, trigger_type="manual"),
                WorkflowVersion: WorkflowVersion(workflow_id=workflow.id, number=1, definition={}),
                WorkflowForecast: WorkflowForecast(workflow_id=workflow.id, days=30),
                SplitDecision: SplitDecision(
                    workflow_id=workflow.id,
                    node_id="split",
                    winner="A",
                    p_value=0.01,
                    alpha=0.05,
                    test="mSPRT",
                    metric="goal_reached",
                ),
                WorkflowExecution: execution,
                ContactFlowState: ContactFlowState(
                    execution_id=execution.id, workflow_id=workflow.id, node_id="a"
                ),
                DeadLetter: DeadLetter(execution_id=execution.id, workflow_id=workflow.id),
                WorkflowGoal: WorkflowGoal(workflow_id=workflow.id, name="Bought"),
                WorkflowAnalytics: WorkflowAnalytics(
                    workflow_id=workflow.id,
                    period_start=date(2026, 1, 1),
                    period_end=date(2026, 1, 31),
                ),
                FormSubmission: FormSubmission(form_id=form.id, contact_id=contact.id),
                Deal: Deal(contact_id=contact.id, title="Big deal"),
                Task: Task(contact_id=contact.id, title="Call"),
                Notification: Notification(user_id=user.id, message="Hi"),
                OutboxMessage: outbox,
                TrackingEvent: TrackingEvent(
                    outbox_id=outbox.id, contact_id=contact.id, kind="open"
                ),
                TrackingHit: TrackingHit(
                    outbox_id=outbox.id, contact_id=contact.id, kind="click", url="https://x.test/"
                ),
                EventLog: EventLog(
                    event_id=f"e-{firm.id}", event_type="api", contact_id=contact.id
                ),
                EventKey: EventKey(scope="event", event_id=f"e-{firm.id}"),
                SiteVisit: SiteVisit(contact_id=contact.id, visitor_id="v1", url="/pricing"),
                AuditLog: AuditLog(action="test"),
                WorkflowComment: WorkflowComment(workflow_id=workflow.id, body="Looks good"),
                ApprovalRequest: ApprovalRequest(workflow_id=workflow.id),
                Suppression: Suppression(address=f"gone-{firm.id}@example.com", reason="manual"),
                Topic: Topic(name="Newsletter"),
                SendingDomain: SendingDomain(domain=f"firm{firm.id}.example"),
                ConsentRecord: ConsentRecord(contact_id=contact.id, form_id=form.id),
                PendingSignup: PendingSignup(
                    form_id=form.id,
                    email="new@example.com",
                    expires_at=datetime(2027, 1, 1, tzinfo=UTC),
                ),
                WorkflowEdit: WorkflowEdit(workflow_id=workflow.id, label="Move a", patch={}),
                UserSession: UserSession(
                    user_id=user.id, key_hash=f"{firm.id:064d}", expires_at=now()
                ),
                ContactImport: contact_import,
                ContactImportChunk: ContactImportChunk(
                    import_id=contact_import.id, seq=0, data=b"email\n"
                ),
                ContactImportError: ContactImportError(import_id=contact_import.id, row_number=2),
                Audience: audience,
                AudienceEnrollment: AudienceEnrollment(
                    audience_id=audience.id, workflow_id=workflow.id
                ),
                HookSubscription: hook,
                HookDelivery: HookDelivery(
                    subscription_id=hook.id, event="goal.reached", fact_key=f"f-{firm.id}"
                ),
            }
        )
        db.session.add_all(rows.values())
        db.session.commit()
    return rows


def _id_of(row) -> int | tuple:
    from sqlalchemy import inspect

    identity = inspect(row).identity
    # A composite key (EventKey's) is looked up whole.
    return identity[0] if len(identity) == 1 else identity


def firm_scoped_models() -> list[type]:
    return sorted(
        (
            mapper.class_
            for mapper in db.Model.registry.mappers
            if issubclass(mapper.class_, FirmScoped)
        ),
        key=lambda cls: cls.__name__,
    )


@pytest.fixture
def two_firms():
    acme, globex = make_firm("Acme"), make_firm("Globex")
    acme_rows, globex_rows = populate(acme), populate(globex)
    # Each request or job starts with an empty session; so does each check.
    ids = (acme.id, globex.id)
    db.session.expunge_all()
    return _Ref(ids[0]), acme_rows, _Ref(ids[1]), globex_rows


class _Ref:
    def __init__(self, firm_id: int):
        self.id = firm_id


def test_the_fixture_covers_every_firm_owned_model(two_firms):
    _, rows, _, _ = two_firms
    assert set(firm_scoped_models()) == set(rows), "add the new model to populate()"


@pytest.mark.parametrize("model", firm_scoped_models(), ids=lambda cls: cls.__name__)
def test_a_firm_sees_only_its_own_rows(two_firms, model):
    acme, acme_rows, globex, globex_rows = two_firms
    with firm_context(acme.id):
        found = db.session.scalars(select(model)).all()
        assert found and all(row.firm_id == acme.id for row in found)
        other_id = _id_of(globex_rows[model])
        db.session.expunge_all()
        assert db.session.get(model, other_id) is None
        assert db.session.scalar(select(func.count()).select_from(model)) == len(found)
    with firm_context(globex.id):
        assert all(row.firm_id == globex.id for row in db.session.scalars(select(model)))


@pytest.mark.parametrize("model", firm_scoped_models(), ids=lambda cls: cls.__name__)
def test_a_query_without_a_firm_returns_nothing(two_firms, model):
    db.session.expunge_all()
    assert db.session.scalars(select(model)).all() == []


def test_get_by_primary_key_of_another_firm_finds_nothing(two_firms):
    acme, _, globex, globex_rows = two_firms
    with firm_context(acme.id):
        assert db.session.get(Contact, _id_of(globex_rows[Contact])) is None
        assert db.session.get(Workflow, _id_of(globex_rows[Workflow])) is None


def test_bulk_update_and_delete_touch_only_the_current_firm(two_firms):
    acme, _, globex, _ = two_firms
    with firm_context(acme.id):
        db.session.execute(update(Contact).values(score=99))
        db.session.execute(delete(Tag))
        db.session.commit()
    with firm_context(globex.id):
        assert db.session.scalars(select(Contact.score)).all() == [0]
        assert db.session.scalars(select(Tag.name)).all() == ["vip"]


def test_relationships_and_joins_are_scoped(two_firms):
    acme, acme_rows, globex, _ = two_firms
    db.session.expunge_all()
    with firm_context(acme.id):
        workflow = db.session.scalars(select(Workflow)).one()
        assert {node.firm_id for node in workflow.nodes} == {acme.id}
        joined = db.session.execute(select(Contact, Tag).join(Contact.tags)).all()
        assert [(c.firm_id, t.firm_id) for c, t in joined] == [(acme.id, acme.id)]
        # An explicit join to another firm's rows still filters both sides.
        cross = db.session.execute(
            select(Contact.id, Workflow.id).join(Workflow, Workflow.firm_id != Contact.firm_id)
        ).all()
        assert cross == []


def test_new_rows_get_the_current_firm(two_firms):
    acme, *_ = two_firms
    with firm_context(acme.id):
        tag = Tag(name="new")
        db.session.add(tag)
        db.session.commit()
        assert tag.firm_id == acme.id


def test_writing_a_row_for_another_firm_is_refused(two_firms):
    acme, _, globex, _ = two_firms
    with firm_context(acme.id):
        db.session.add(Tag(name="sneaky", firm_id=globex.id))
        with pytest.raises(TenancyError):
            db.session.flush()
        db.session.rollback()


def test_a_new_row_without_a_firm_is_refused(two_firms):
    db.session.add(Tag(name="orphan"))
    with pytest.raises(TenancyError):
        db.session.flush()
    db.session.rollback()


def test_system_work_may_span_firms_explicitly(two_firms):
    stmt = select(Contact).execution_options(all_firms=True)
    assert len(db.session.scalars(stmt).all()) == 2


def test_scoped_get_ignores_the_identity_map_and_absurd_ids(two_firms):
    from app.tenancy import scoped_get

    acme, _, globex, globex_rows = two_firms
    other_id = _id_of(globex_rows[Contact])
    with firm_context(globex.id):
        assert db.session.get(Contact, other_id) is not None  # now in the identity map
    with firm_context(acme.id):
        assert scoped_get(Contact, other_id) is None
        assert scoped_get(Contact, 2**70) is None
        assert scoped_get(WorkflowExecution, 2**62) is None
