"""The trigger types, one module per family, imported in the order the
triggers panel and the API list them."""

# isort: skip_file
from app.automation.triggers.kinds import engagement  # noqa: F401
from app.automation.triggers.kinds import crm  # noqa: F401
from app.automation.triggers.kinds import audiences  # noqa: F401
from app.automation.triggers.kinds import dates  # noqa: F401
from app.automation.triggers.kinds import direct  # noqa: F401
