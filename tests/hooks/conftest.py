"""The API client and the local HTTP receiver of the API and delivery tests."""

from tests.api.conftest import api, api_as, session_csrf  # noqa: F401
from tests.delivery.conftest import receiver  # noqa: F401
