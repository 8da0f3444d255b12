"""The README a newcomer follows: its manifest runs from any folder with nothing beside it,
and no link of the README or docs/ leaves the repository.
"""

from __future__ import annotations

import re
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
