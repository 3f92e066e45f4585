"""Comments on workflows and steps."""

from __future__ import annotations

import pytest

from app.automation.lifecycle.comments import (
    CommentError,
    add_comment,
    comments_by_node,
    delete_comment,
    list_comments,
)
from app.tenancy import firm_context
from tests.factories import make_user
from tests.lifecycle.helpers import nurture_workflow


def test_comments_are_listed_and_counted_per_step(acme, bob, alice):
    workflow = nurture_workflow(acme)
    with firm_context(acme.id):
        add_comment(workflow, bob, "Overall looks good")
        add_comment(workflow, bob, "Subject too long?", node_id="send_welcome")
        add_comment(workflow, alice, "Agreed", node_id="send_welcome")
        add_comment(workflow, alice, "Shorter wait?", node_id="wait_2_days")
        assert [c.body for c in list_comments(workflow)] == [
            "Overall looks good",
            "Subject too long?",
            "Agreed",
            "Shorter wait?",
        ]
        assert [c.body for c in list_comments(workflow, "send_welcome")] == [
            "Subject too long?",
            "Agreed",
        ]
        assert comments_by_node(workflow) == {"send_welcome": 2, "wait_2_days": 1}


@pytest.mark.parametrize(
    "body, node_id, field",
    [
        ("", None, "body"),
        ("   ", None, "body"),
        ("x" * 5001, None, "body"),
        ("hi", "ghost", "node_id"),
    ],
)
def test_bad_comments_are_refused_with_the_field(acme, bob, body, node_id, field):
    workflow = nurture_workflow(acme)
    with firm_context(acme.id):
        with pytest.raises(CommentError) as info:
            add_comment(workflow, bob, body, node_id)
        assert info.value.field == field
        assert list_comments(workflow) == []


def test_only_the_author_or_an_admin_deletes(acme, bob, alice):
    workflow = nurture_workflow(acme)
    carol = make_user(acme, "carol@acme.test", role="marketer")
    with firm_context(acme.id):
        mine = add_comment(workflow, bob, "mine")
        other = add_comment(workflow, bob, "other")
        with pytest.raises(CommentError) as info:
            delete_comment(mine, carol)
        assert info.value.status == 403
        delete_comment(mine, bob)
        delete_comment(other, alice)
        assert list_comments(workflow) == []
