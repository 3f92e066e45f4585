"""SMS through an HTTP gateway (``SMS_GATEWAY_URL``).

The gateway gets ``POST {"to", "body", "idempotency_key"}`` as JSON, with
the same key in an ``Idempotency-Key`` header, so a repeat after a worker
died between hand-over and record can be dropped by the gateway. The
gateway is the operator's own configuration, so it is not put through the
webhook SSRF guard. Any 2xx answer is a hand-over.
"""

from __future__ import annotations

import httpx

from app.automation.delivery.errors import SendFailed

TIMEOUT_SECONDS = 10.0


def send_sms(client: httpx.Client, row, gateway_url: str, *, user_agent: str) -> dict:
    payload = row.payload or {}
    body = {
        "to": payload.get("to") or row.to_address,
        "body": payload.get("body") or row.body_text,
        "idempotency_key": row.message_id,
    }
    try:
        response = client.post(
            gateway_url,
            json=body,
            headers={"Idempotency-Key": row.message_id, "User-Agent": user_agent},
            timeout=TIMEOUT_SECONDS,
            follow_redirects=False,
        )
    except httpx.TimeoutException:
        raise SendFailed(f"SMS gateway timed out after {TIMEOUT_SECONDS:g}s") from None
    except httpx.HTTPError as exc:
        raise SendFailed(f"SMS gateway request failed: {type(exc).__name__}") from None
    result = {"status_code": response.status_code, "body": response.text[:500]}
    if not 200 <= response.status_code < 300:
        raise SendFailed(f"SMS gateway answered HTTP {response.status_code}", result)
    return result
