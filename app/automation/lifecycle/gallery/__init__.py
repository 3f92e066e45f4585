"""Ready-made workflows a marketer starts from ("create from template").

Each template is data in the import/export document shape
(:mod:`app.automation.lifecycle.portability`), so instantiating one is importing it
under a new name: the same checks, the same rows, a new draft.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.automation.graph.document import FORMAT, FORMAT_VERSION
from app.automation.lifecycle.gallery.catalog import CATALOG
from app.automation.lifecycle.portability import import_workflow
from app.models import Workflow


@dataclass(frozen=True)
class Template:
    key: str
    name: str
    description: str
    category: str
    workflow: dict

    def document(self) -> dict:
        return {"format": FORMAT, "version": FORMAT_VERSION, "workflow": self.workflow}

    def summary(self) -> dict:
        return {
            "key": self.key,
            "name": self.name,
            "description": self.description,
            "category": self.category,
            "steps": len(self.workflow["nodes"]),
            "triggers": [trigger["trigger_type"] for trigger in self.workflow["triggers"]],
        }


TEMPLATES: dict[str, Template] = {
    entry["key"]: Template(
        key=entry["key"],
        name=entry["workflow"]["name"],
        description=entry["workflow"]["description"],
        category=entry["category"],
        workflow=entry["workflow"],
    )
    for entry in CATALOG
}


class UnknownTemplate(KeyError):
    pass


def list_templates() -> list[Template]:
    return list(TEMPLATES.values())


def get_template(key: str) -> Template:
    try:
        return TEMPLATES[key]
    except KeyError:
        raise UnknownTemplate(key) from None


def instantiate(key: str, name: str | None = None, user=None) -> Workflow:
    """A new draft workflow of the current firm built from the template;
    commits. ``name`` defaults to the template's name."""
    template = get_template(key)
    return import_workflow(template.document(), user, name=name or template.name)
