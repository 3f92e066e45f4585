from tests.conftest import USING_REDIS


def test_healthz_reports_database_and_queue(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json == {
        "status": "ok",
        "database": "ok",
        "queue": "ok" if USING_REDIS else "inline",
    }
