"""Reading the oversight report: each view and download is audited with the report's hash,
so a file an auditor holds can be matched to the log entry of its making."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser

from ..insights.oversight_report import Report
from ..models import AuditEvent
from .audit import audit

# How the report was read: on the page, its printable page, or a file.
VIEWED = ("page", "print")
DOWNLOADED = ("csv", "json")


def record_report_read(report: Report, *, by: AbstractBaseUser, output: str) -> AuditEvent:
    if output not in VIEWED + DOWNLOADED:
        raise ValueError(f"Unknown report output {output!r}")
    data = report.data()
    return audit(
        "oversight_report.viewed" if output in VIEWED else "oversight_report.downloaded",
        None,
        by,
        after={
            "output": output,
            "sha256": report.sha256,
            "period": data["period"],
            "scope": data["scope"],
        },
        note=f"sha256:{report.sha256}",
    )
