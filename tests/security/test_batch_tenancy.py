"""One engine batch holding executions of two firms whose tags, lists and
custom fields have the same names: every write lands in the firm of its
execution (the engine's set-based writes filter by firm by hand, outside
the ORM's tenancy hook), and no row points across firms."""

from __future__ import annotations

from sqlalchemy import select

from app.automation.engine.jobs import advance_ready_batch
from app.extensions import db
from app.models import Contact, ContactList, Tag, WorkflowExecution
from app.tenancy import firm_context
from tests.engine.helpers import active_workflow, chain, start
from tests.factories import make_contact, make_user
from tests.security.routes import cross_firm_references

PER_FIRM = 6


def _firm_setup(firm, admin, *, tagged_vip: bool):
    with firm_context(firm.id):
        newsletter = ContactList(name="Newsletter")
        old = Tag(name="old")
        db.session.add_all([newsletter, old] + ([Tag(name="vip")] if tagged_vip else []))
        db.session.commit()
        list_id = newsletter.id
    contacts = [
        make_contact(firm, score=0, custom_fields={"plan": "free"}) for _ in range(PER_FIRM)
    ]
    with firm_context(firm.id):
        for contact in contacts:
            db.session.merge(contact).tags.append(db.session.merge(old))
        db.session.commit()
    specs, edges = chain(
        ("vip", "add_tag", {"tag": "vip"}),
        ("news", "add_to_list", {"list": list_id}),
        ("plan", "update_contact", {"fields": {"custom.plan": "gold", "score": "+10"}}),
        ("unold", "remove_tag", {"tag": "old"}),
    )
    workflow = active_workflow(firm, admin, specs, edges)
    start(workflow, *contacts)
    return list_id


def _contacts(firm) -> list[Contact]:
    db.session.expire_all()
    with firm_context(firm.id):
        return list(db.session.scalars(select(Contact)))


def test_one_batch_of_two_firms_with_the_same_names_writes_each_to_its_own(acme, globex, alice):
    admin = make_user(globex, "gadmin@globex.test", role="admin")
    lists = {
        acme.id: _firm_setup(acme, alice, tagged_vip=True),
        globex.id: _firm_setup(globex, admin, tagged_vip=False),
    }
    result = advance_ready_batch(limit=10 * PER_FIRM)
    assert result["executions"] == 2 * PER_FIRM  # both firms in this one batch

    for firm in (acme, globex):
        contacts = _contacts(firm)
        assert len(contacts) == PER_FIRM
        with firm_context(firm.id):
            [vip] = db.session.scalars(select(Tag).where(Tag.name == "vip")).all()
            statuses = set(db.session.scalars(select(WorkflowExecution.status)))
            for contact in contacts:
                assert [(t.name, t.firm_id) for t in contact.tags] == [("vip", firm.id)]
                assert contact.tags[0].id == vip.id
                assert [(item.id, item.firm_id) for item in contact.lists] == [
                    (lists[firm.id], firm.id)
                ]
                assert contact.custom_fields["plan"] == "gold"
                assert contact.score == 10
        assert statuses == {"completed"}
    with firm_context(globex.id):
        assert db.session.get(ContactList, lists[acme.id]) is None
    assert cross_firm_references() == []
