"""The README a newcomer follows: its manifest runs from any folder with nothing beside it,
no link of the README or docs/ leaves the repository, and every `docs/api.md §N` the code
cites is a heading of that page.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from runner.cli import main
from tests.helpers.runs import REPO, ledger_events

DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def readme_manifest() -> str:
    text = (REPO / "README.md").read_text()
    section = text[text.index("## The manifest\n"):]
    found = re.search(r"```yaml\n(.*?)```", section, re.S)
    assert found is not None
    return found.group(1)


def test_the_readme_manifest_runs_from_an_empty_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "shots.yaml").write_text(readme_manifest())
    monkeypatch.chdir(tmp_path)
    assert main(["validate", "shots.yaml"]) == 0
    assert main(["run", "shots.yaml", "--simulate", "-q"]) == 0
    out = tmp_path / "output" / "shots"  # the default folder, as the README says
    succeeded = {e["job"] for e in ledger_events(out) if e["event"] == "succeeded"}
    assert len(succeeded) == 6 and len(list((out / "videos").glob("*.mp4"))) == 6


def test_no_link_leaves_the_repository() -> None:
    for doc in DOCS:
        text = doc.read_text()
        assert "../shared" not in text, doc  # the specification beside a clone
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if target.startswith("#"):
                continue
            assert "://" not in target, (doc, target)
            path = (doc.parent / target.split("#")[0]).resolve()
            assert path.is_relative_to(REPO) and path.exists(), (doc, target)


API_DOC = REPO / "docs" / "api.md"
# "docs/api.md §3.4", "docs/api.md §4.1, §4.2", "docs/api.md §2, §3, §4" (a line break may
# fall after the file name in a wrapped comment).
_CITATION = re.compile(r"docs/api\.md((?:[\s#,]*(?:and\s+)?§\d+(?:\.\d+)*)+)")
_SECTION = re.compile(r"§(\d+(?:\.\d+)*)")
_HEADING = re.compile(r"^#{2,4} (\d+(?:\.\d+)*)\.? ", re.M)


def api_sections() -> set[str]:
    return set(_HEADING.findall(API_DOC.read_text()))


def repo_files() -> list[Path]:
    """Tracked files and new ones git does not ignore (no caches, venvs or run output)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO, capture_output=True, check=True,
    ).stdout.decode().split("\0")
    return [REPO / name for name in listed if name and (REPO / name).is_file()]


def citations(text: str) -> list[str]:
    return [s for found in _CITATION.findall(text) for s in _SECTION.findall(found)]


def test_the_citation_pattern_reads_every_form() -> None:
    assert citations("see docs/api.md §3.4.") == ["3.4"]
    assert citations("(docs/api.md §4.1, §4.2) and (docs/api.md §2, §3, §4)") == [
        "4.1", "4.2", "2", "3", "4"]
    assert citations("a token (docs/api.md\n    # §3.4), so") == ["3.4"]
    assert citations("docs/api.md §N") == []


def test_the_api_page_has_numbered_sections() -> None:
    sections = api_sections()
    assert {"1", "1.1", "2", "3.4", "5.3", "6.1"} <= sections, sorted(sections)


def test_every_cited_api_section_exists() -> None:
    sections = api_sections()
    cited = 0
    for path in repo_files():
        if path.suffix not in {".py", ".md", ".json", ".js", ".toml", ".yaml"}:
            continue
        for section in citations(path.read_text(errors="replace")):
            cited += 1
            assert section in sections, f"{path.relative_to(REPO)} cites docs/api.md §{section}"
    assert cited >= 10  # the client's docstrings cite it throughout


def test_nothing_cites_the_specification_outside_the_repository() -> None:
    outside = "scenario-api" + ".md"  # spelled apart so that this file does not match
    for path in repo_files():
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue  # images and other binaries
        assert outside not in text, path.relative_to(REPO)
