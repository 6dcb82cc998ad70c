"""`capplan check` findings as JUnit XML (CI test reports) and GitHub Actions workflow commands."""

from __future__ import annotations

from xml.etree import ElementTree as ET

from capplan.act.check import Finding
from capplan.act.policy import Policy

CHECK_FORMATS = ("table", "csv", "json", "junit", "github")


def junit(findings: list[Finding], checked: list[tuple[str, str, str]], policy: Policy) -> str:
    """One <testsuite> per file, one <testcase> per workload container checked; a failing finding
    is a <failure>, the others are listed in <system-out>."""
    by_case: dict[tuple[str, str, str], list[Finding]] = {}
    for f in findings:
        by_case.setdefault((f.file, f"{f.namespace or ''}/{f.kind}/{f.name}", f.container), []).append(f)
    files: dict[str, list[tuple[str, str]]] = {}
    for file, workload, container in checked:
        files.setdefault(file, []).append((workload, container))
    root = ET.Element("testsuites", name="capplan check")
    total = failures = 0
    for file, cases in files.items():
        suite = ET.SubElement(root, "testsuite", name=file)
        suite_failures = 0
        for workload, container in cases:
            case = ET.SubElement(suite, "testcase", classname=workload, name=container, file=file)
            found = by_case.get((file, workload, container), [])
            failing = [f for f in found if policy.fails(f.severity)]
            if failing:
                first = failing[0]
                failure = ET.SubElement(case, "failure", message=f"{first.rule}: {first.message}", type=first.rule)
                failure.text = "\n".join(f"{f.file}:{f.line}: {f.severity} {f.rule}: {f.message}" for f in failing)
                suite_failures += 1
            rest = [f for f in found if not policy.fails(f.severity)]
            if rest:
                ET.SubElement(case, "system-out").text = "\n".join(
                    f"{f.file}:{f.line}: {f.severity} {f.rule}: {f.message}" for f in rest)
        suite.set("tests", str(len(cases)))
        suite.set("failures", str(suite_failures))
        suite.set("errors", "0")
        total += len(cases)
        failures += suite_failures
    root.set("tests", str(total))
    root.set("failures", str(failures))
    root.set("errors", "0")
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _escape_data(text: str) -> str:
    # GitHub's workflow command escaping (actions/toolkit, core/src/command.ts escapeData)
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def github(findings: list[Finding]) -> str:
    """`::error file=F,line=L,title=T::message` per finding (notice/warning/error as the severity)."""
    lines = []
    for f in findings:
        title = f"capplan {f.rule} ({f.namespace or ''}/{f.kind}/{f.name} {f.container})"
        lines.append(f"::{f.severity} file={_escape_property(f.file)},line={f.line},"
                     f"title={_escape_property(title)}::{_escape_data(f.message)}")
    return "\n".join(lines) + ("\n" if lines else "")
