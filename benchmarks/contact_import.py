"""A CSV contact import of ``--rows`` rows (default 100,000), end to end.

Writes a CSV file (e-mail, names, score, a custom field, tags; every 100th
row bad), uploads it the way the page does (``store_upload`` from a file on
disk, so the request never holds the whole file), runs the import job in
this process and prints rows per second for both steps, the upload's peak
Python heap (tracemalloc) and how much the job grew the process's peak RSS,
with the machine's load, and the import job's CPU per row (this process
and, on PostgreSQL, the database's backends).

    .venv/bin/python benchmarks/contact_import.py --rows 100000
    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres \\
        .venv/bin/python benchmarks/contact_import.py
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness  # noqa: E402
import services  # noqa: E402


def write_csv(path: Path, rows: int) -> int:
    with path.open("w", encoding="utf-8") as out:
        out.write("Email,First name,Last name,Score,Plan,Tags\n")
        for n in range(rows):
            email = f"person{n}@example.com" if n % 100 else f"bad-address-{n}"
            out.write(f'{email},First{n},Last{n},{n % 97},plan{n % 3},"t{n % 5},all"\n')
    return path.stat().st_size


def measured(fn, trace: bool):
    """(result, seconds, MiB): the Python heap's peak (tracemalloc, which
    slows the run: the upload only) or the growth of the process's peak RSS."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if trace:
        tracemalloc.start()
    started = time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - started
    if trace:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return result, seconds, peak / (1024 * 1024)
    return result, seconds, (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss) / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args()
    url, drop = harness.bench_database(os.environ.get("DATABASE_URL"), "contact_import")
    try:
        app = harness.make_app(url, None, "bench-import")
        with app.app_context():
            from app.automation.crm.import_files import store_upload
            from app.automation.crm.import_rows import run_import
            from app.extensions import db
            from app.models import ContactImport
            from app.tenancy import firm_context

            db.create_all()
            firm, user = harness.firm_and_user()
            path = Path(tempfile.mkdtemp()) / "people.csv"
            size = write_csv(path, args.rows)
            with firm_context(firm.id), path.open("rb") as stream:
                imp, upload_s, upload_mib = measured(
                    lambda: store_upload(stream, "people.csv", user.id), trace=True
                )
                import_id = imp.id
                # The guessed mapping, queued for the job this process runs below.
                imp.status = "queued"
                db.session.commit()
            if os.environ.get("PROFILE"):
                import cProfile

                cProfile.runctx("run_import(import_id)", globals(), locals(), sort="cumtime")
                return 0
            with services.cpu_split(url, "job") as cpu:
                _, job_s, job_mib = measured(lambda: run_import(import_id), trace=False)
            with firm_context(firm.id):
                done = db.session.get(ContactImport, import_id)
                print(
                    f"{args.rows} rows ({size / 1e6:.1f} MB): {done.created_count} created, "
                    f"{done.error_count} bad; {harness.load()}; import job CPU ms per row "
                    + ", ".join(f"{k} {v * 1000 / args.rows:.3f}" for k, v in cpu.items()),
                    file=sys.stderr,
                )
            db.session.remove()
            db.engine.dispose()
        harness.print_figures(
            "contact_import",
            [
                ("upload_rows_per_s", args.rows / upload_s, "rows/s"),
                ("upload_peak_heap", upload_mib, "MiB"),
                ("import_rows_per_s", args.rows / job_s, "rows/s"),
                ("import_peak_rss_growth", job_mib, "MiB"),
                ("file_size", size / (1024 * 1024), "MiB"),
                *(
                    (f"import_cpu_ms_per_row_{kind}", seconds * 1000 / args.rows, "ms")
                    for kind, seconds in cpu.items()
                ),
            ],
        )
    finally:
        drop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
