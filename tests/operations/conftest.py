"""Operations tests reuse the delivery tests' real receivers (SMTP, HTTP)."""

from tests.delivery.conftest import receiver, smtp_server  # noqa: F401
