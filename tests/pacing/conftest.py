from tests.api.conftest import api, api_as  # noqa: F401  (JSON clients)
from tests.delivery.conftest import smtp_server  # noqa: F401  (a real SMTP receiver)
from tests.web.conftest import signed_in  # noqa: F401  (logs in, gives a CSRF token)
