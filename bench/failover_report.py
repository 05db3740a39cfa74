#!/usr/bin/python3
"""The table of bench/failover: medians over rounds per pooler, and every round's figures.

Usage: failover_report.py REPORTS.jsonl COMMAND PGBOUNCER_VERSION PGVIGIL_VERSION
REPORTS.jsonl holds one `failover_load.py report --json` object per pooler and round, with
"round" and "pooler" added.
"""

import json
import statistics
import sys
import time

COLUMNS = [
    ("in_flight_at_crash", "in flight at the crash", "{:.0f}"),
    ("failed", "failed transactions", "{:.0f}"),
    ("failed_while_crashing", "of them begun while the server was dying", "{:.0f}"),
    ("failed_after_crash", "of them begun after it was gone", "{:.0f}"),
    ("hung", "unanswered after the run", "{:.0f}"),
    ("seconds_without_writes", "seconds without writes", "{:.2f}"),
    ("first_write_after_promotion_seconds", "first write after the promotion (s)", "{:.2f}"),
    ("committed", "committed", "{:.0f}"),
]


def shown(value, form: str) -> str:
    if value is None or value == float("inf"):
        return "none"
    return form.format(value)


def median(values):
    present = [v for v in values if v is not None]
    # A round without a write after the promotion is the worst round, not a missing one.
    if len(present) < len(values):
        return None if len(present) < len(values) / 2 else statistics.median_low(
            present + [float("inf")] * (len(values) - len(present)))
    return statistics.median_low(present)


def main() -> int:
    path, command, pgbouncer, pgvigil = sys.argv[1:5]
    reports = [json.loads(line) for line in open(path) if line.strip()]
    poolers = ["pgbouncer", "pgvigil"]
    rounds = sorted({r["round"] for r in reports})
    print(f"# Unplanned failover under load: PgBouncer and pgvigil\n")
    print(f"Run {time.strftime('%Y-%m-%d %H:%M %Z')}: `{command}`; {pgbouncer}; {pgvigil}; "
          f"{len(rounds)} rounds, medians shown.\n")
    print("| pooler | " + " | ".join(title for _, title, _ in COLUMNS) + " |")
    print("|---|" + "---:|" * len(COLUMNS))
    for pooler in poolers:
        mine = [r for r in reports if r["pooler"] == pooler]
        cells = [shown(median([r[key] for r in mine]), form) for key, _, form in COLUMNS]
        print(f"| {pooler} | " + " | ".join(cells) + " |")
    print("\nEvery round:\n")
    print("| round | pooler | " + " | ".join(title for _, title, _ in COLUMNS) + " | errors |")
    print("|---|---|" + "---:|" * len(COLUMNS) + "---|")
    for r in sorted(reports, key=lambda r: (r["round"], r["pooler"])):
        cells = [shown(r[key], form) for key, _, form in COLUMNS]
        errors = "; ".join(r["errors"][:3]).replace("|", "/")
        print(f"| {r['round']} | {r['pooler']} | " + " | ".join(cells) + f" | {errors} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
