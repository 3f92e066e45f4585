"""Demo data for a first run (``automation seed-demo``)."""

from __future__ import annotations

from app.extensions import db
from app.models import Contact, Firm, User
from app.tenancy import firm_context

DEMO_FIRM = "Demo Firm"
DEMO_EMAIL = "demo@example.com"
DEMO_PASSWORD = "demo-password"


def seed_demo_data() -> tuple[str, str, bool]:
    """Create the demo firm, an admin and a few contacts; idempotent."""
    if User.all_with_email(DEMO_EMAIL):
        return DEMO_EMAIL, DEMO_PASSWORD, False
    firm = db.session.query(Firm).filter_by(name=DEMO_FIRM).first() or Firm(name=DEMO_FIRM)
    db.session.add(firm)
    db.session.flush()
    with firm_context(firm.id):
        user = User(email=DEMO_EMAIL, name="Demo Admin", role="admin")
        user.set_password(DEMO_PASSWORD)
        db.session.add(user)
        for first, last in [("Ada", "Lovelace"), ("Grace", "Hopper"), ("Alan", "Turing")]:
            db.session.add(
                Contact(
                    email=f"{first.lower()}@example.com",
                    first_name=first,
                    last_name=last,
                    score=10,
                )
            )
        db.session.commit()
    return DEMO_EMAIL, DEMO_PASSWORD, True
