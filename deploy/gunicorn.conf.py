"""gunicorn settings for the web process (docs/OPERATIONS.md):

    gunicorn -c deploy/gunicorn.conf.py "app:create_app()"

Every value can be set from the environment. With
``PROMETHEUS_MULTIPROC_DIR`` set, each web worker writes its metrics there
and any of them answers ``GET /metrics`` for all (and for the worker.py
processes of the host that share the directory); a worker that exits is
marked dead so its live gauges stop counting.
"""

import os

bind = os.environ.get("BIND") or f"0.0.0.0:{os.environ.get('PORT') or 8000}"
workers = int(os.environ.get("WEB_CONCURRENCY") or 2)
worker_class = "gthread"
# Keep DB_POOL_SIZE >= threads (app/config.py).
threads = int(os.environ.get("WEB_THREADS") or 4)
timeout = int(os.environ.get("WEB_TIMEOUT") or 30)
graceful_timeout = 20
keepalive = 5
accesslog = os.environ.get("ACCESS_LOG") or None
errorlog = "-"
# Requests carry X-Forwarded-* from our proxies only (TRUSTED_PROXIES).
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS") or "127.0.0.1"

if (os.environ.get("LOG_FORMAT") or "").lower() == "json":
    # gunicorn's own lines (errors, and access lines when ACCESS_LOG is
    # set) as JSON objects too; the app's records go through the root
    # logger, configured by create_app.
    logconfig_dict = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "app.automation.operations.logs.JsonFormatter"}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"handlers": ["stderr"], "level": "INFO"},
        "loggers": {
            "gunicorn.error": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
            "gunicorn.access": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
        },
    }


def on_starting(server):
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if path:
        os.makedirs(path, exist_ok=True)


def child_exit(server, worker):
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from app.automation.operations.metrics import mark_process_dead

        mark_process_dead(worker.pid)
