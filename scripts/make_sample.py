"""Regenerate gatecheck/samples/sample_project_report.docx (the README's demo input).

A short, fictional ST0505-style project report: title, Plan..Maintain themes,
a KSB mapping appendix and a reference list, so `gatecheck extract --sample`
shows section kinds and exclusions. Run: python scripts/make_sample.py
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.docgen import Docx, p, r, table  # noqa: E402

SECTIONS = {
    "Plan": "I was asked by the service desk manager to replace twelve ageing laptops in the finance team. "
    "I agreed the scope, the budget and a two-week timeline, and I logged the work as change request CR-214.",
    "Design": "I compared three builds and chose a standard Windows image with the finance applications "
    "pre-installed, so each laptop could be deployed in under an hour without manual configuration.",
    "Build": "I built the image in the test lab, added the drivers for the new model and scripted the "
    "installation of the accounting client, recording every step in the team's knowledge base.",
    "Test": "I tested the image on two spare laptops against a checklist agreed with the finance lead: "
    "sign-in, printing, VPN, the accounting client and file shares. Two defects were fixed before release.",
    "Deploy": "I deployed the laptops over three evenings to avoid disrupting month-end, migrating each "
    "user's files and confirming with them that everything worked before collecting the old device.",
    "Maintain": "I set up patch compliance reporting for the new devices and handed over a support note "
    "to the service desk so that first-line colleagues can resolve the common issues themselves.",
}


def build(path: Path) -> Path:
    doc = Docx()
    doc.add(p("Laptop refresh for the finance team", style="Title"))
    doc.add(p("Project report, IT Solutions Technician (ST0505)"))
    doc.add(p("Contents", style="Heading1"), p("Introduction", style="TOC1"), p("Appendix A", style="TOC1"))
    doc.add(p("Introduction", style="Heading1"))
    doc.add(p("This report describes a project I completed at work between March and May, following the "
              "Situation, Task, Action, Result and Reflection structure for each stage."))
    for theme, text in SECTIONS.items():
        doc.add(p(theme, style="Heading2"), p(text))
    doc.add(p("Reflection", runs=r("Reflection", bold=True)))
    doc.add(p("Next time I would book the deployment evenings earlier and involve the finance lead in testing "
              "from the first day, because their checklist found the printing defect that I had missed."))
    doc.add(p("Appendix A: KSB mapping", style="Heading1"))
    doc.add(table([["KSB", "Where evidenced"], ["K3", "Plan"], ["S2", "Design"], ["S3", "Build"],
                   ["K4", "Test"], ["S5", "Deploy"], ["B1", "Maintain"]]))
    doc.add(p("References", style="Heading1"))
    doc.add(p("Microsoft (2024) Windows deployment documentation. Available at: https://learn.microsoft.com"))
    return doc.save(path)


if __name__ == "__main__":
    out = build(ROOT / "gatecheck" / "samples" / "sample_project_report.docx")
    print(out)
