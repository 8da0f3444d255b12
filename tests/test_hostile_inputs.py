"""A corpus of user mistakes and hostile inputs, each refused with one clear message, exit 2,
no traceback and no request (issue 12). Two families:

- manifests, through `kling-batch validate` (and for some, `run` too): bad settings, prompts
  files with odd line breaks, inputs whose content is not what their name says, paths that
  leave the manifest's folder, blank prompts, CSV problems named after the expanded job;
- `run` flags, checked as the manifest's settings are: non-finite and non-positive numbers,
  unknown models, shares past 100 %.

Folder mistakes (another manifest, another API origin, a read-only folder, a full disk) have
their own tests in tests/test_batch_folder.py and tests/test_disk_failures.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from runner.cli import main
from runner.simulator import Simulator
from tests.helpers.media import png_bytes
from tests.helpers.runs import FAST_RUN, background_simulator, t2v_jobs, write_manifest

T2V = "model: model_kling-v3-t2v-4k"


def validate(tmp_path: Path, text: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """`kling-batch validate` of `text` as m.yaml in `tmp_path`: (exit code, all output)."""
    path = tmp_path / "m.yaml"
    path.write_text(text)
    capsys.readouterr()
    code = main(["validate", str(path)])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def job(params: str, extra: str = "") -> str:
    return f"version: 1\njobs:\n  - id: a\n    {T2V}\n    params: {params}\n{extra}"


# --- settings: the same rules at validate time as at run time -----------------------------

SETTING_CASES = [
    ("share over 100 %", 'maxFailures: "150%"', "settings.maxFailures: '150%' is not valid"),
    ("share of zero", 'maxFailures: "0%"', "settings.maxFailures: '0%' is not valid"),
    ("zero failures", "maxFailures: 0", "settings.maxFailures: 0 is not valid"),
    ("zero budget", "budget: 0", "settings.budget: 0 is not valid"),
    ("infinite timeout", "jobTimeout: .inf", "settings.jobTimeout: inf is not valid"),
    ("a rate of nan", "submitsPerSecond: .nan", "settings.submitsPerSecond: nan is not valid"),
    ("negative retries", "autoRetries: -1", "settings.autoRetries: -1 is not valid"),
    ("unknown poll mode", "pollMode: sometimes", "settings.pollMode: 'sometimes' is not valid"),
    ("a typo in a model limit", "modelConcurrency: {model_kling-v3-t2v4k: 2}",
     "did you mean 'model_kling-v3-t2v-4k'?"),
]


@pytest.mark.parametrize(("setting", "expected"), [c[1:] for c in SETTING_CASES],
                         ids=[c[0] for c in SETTING_CASES])
def test_bad_settings_are_refused_by_validate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], setting: str, expected: str
) -> None:
    code, out = validate(tmp_path, job("{prompt: hi}", f"settings: {{{setting}}}\n"), capsys)
    assert code == 2 and expected in out and "Traceback" not in out
    assert "m.yaml:6:" in out  # the line of the setting


# --- run flags, checked as their settings are -------------------------------------------

@pytest.fixture(scope="module")
def quiet_simulator() -> Iterator[Simulator]:
    with background_simulator() as sim:
        yield sim


FLAG_CASES = [
    ("budget nan", ["--budget", "nan"], "--budget 'nan' is not valid"),
    ("budget inf", ["--budget", "inf"], "--budget 'inf' is not valid"),
    ("budget zero", ["--budget", "0"], "--budget '0' is not valid"),
    ("negative budget", ["--budget", "-5"], "--budget '-5' is not valid"),
    ("concurrency zero", ["--concurrency", "0"], "--concurrency '0' is not valid"),
    ("concurrency text", ["--concurrency", "many"], "--concurrency 'many' is not valid"),
    ("submit rate nan", ["--submit-rate", "nan"], "--submit-rate 'nan' is not valid"),
    ("job timeout inf", ["--job-timeout", "inf"], "--job-timeout 'inf' is not valid"),
    ("negative auto retries", ["--auto-retries", "-1"], "--auto-retries '-1' is not valid"),
    ("max failures 0%", ["--max-failures", "0%"], "--max-failures '0%' is not valid"),
    ("max failures 150%", ["--max-failures", "150%"], "--max-failures '150%' is not valid"),
    ("unknown model limit", ["--model-concurrency", "foo=2"], "unknown model 'foo'"),
    ("model limit typo", ["--model-concurrency", "model_kling-v3-t2v4k=2"],
     "did you mean 'model_kling-v3-t2v-4k'?"),
    ("model limit zero", ["--model-concurrency", "model_kling-v3-t2v-4k=0"], "0 is not valid"),
    ("model limit shape", ["--model-concurrency", "model_kling-v3-t2v-4k"], "is not MODEL=N"),
    ("poll interval nan", ["--poll-interval", "nan"], "--poll-interval 'nan' is not valid"),
    ("lost grace zero", ["--lost-grace", "0"], "--lost-grace '0' is not valid"),
    ("listings per second nan", ["--listings-per-second", "nan"],
     "--listings-per-second 'nan' is not valid"),
]


@pytest.mark.usefixtures("api_credentials")
@pytest.mark.parametrize(("flags", "expected"), [c[1:] for c in FLAG_CASES],
                         ids=[c[0] for c in FLAG_CASES])
def test_bad_run_flags_are_refused_before_anything_is_sent(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], quiet_simulator: Simulator,
    flags: list[str], expected: str,
) -> None:
    manifest = write_manifest(tmp_path, t2v_jobs(1))
    before = sum(quiet_simulator.stats.requests_by_endpoint.values())
    capsys.readouterr()
    code = main(["run", str(manifest), "-o", str(tmp_path / "out"),
                 "--base-url", quiet_simulator.base_url, *FAST_RUN, *flags])
    err = capsys.readouterr().err
    assert code == 2 and expected in err and "Traceback" not in err, err
    assert sum(quiet_simulator.stats.requests_by_endpoint.values()) == before
    assert len(err.strip().splitlines()) == 1


@pytest.mark.usefixtures("api_credentials")
def test_a_bad_setting_is_named_as_the_setting_by_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], quiet_simulator: Simulator
) -> None:
    manifest = write_manifest(tmp_path, t2v_jobs(1), settings={"maxFailures": "150%"})
    capsys.readouterr()
    code = main(["run", str(manifest), "-o", str(tmp_path / "out"),
                 "--base-url", quiet_simulator.base_url, *FAST_RUN])
    err = capsys.readouterr().err
    assert code == 2 and "settings.maxFailures" in err and "--max-failures" not in err


def test_settings_and_flags_share_one_table() -> None:
    from runner.manifest.settings import SETTING_KEYS, SETTINGS

    assert {s.key for s in SETTINGS if s.key} | {"modelConcurrency"} == set(SETTING_KEYS)
    assert all(s.flag.startswith("--") for s in SETTINGS)


# --- inputs whose content is not what their name says, or that leave the folder ----------

MP4_HEAD = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2" + b"\x00" * 64
JPEG_HEAD = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x00" * 64
V21 = "model: model_kling-v2-1-pro"


def image_job(value: str) -> str:
    params = f"{{prompt: hi, startImage: {value}}}"
    return f"version: 1\njobs:\n  - id: a\n    {V21}\n    params: {params}\n"


def place(tmp_path: Path, files: dict[str, bytes | str]) -> None:
    """Files beside the manifest: bytes are content, a str starting with '->' a symlink."""
    for name, content in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, str):
            path.symlink_to(content.removeprefix("->"))
        else:
            path.write_bytes(content)


INPUT_CASES: list[tuple[str, dict[str, bytes | str], str, str]] = [
    ("a text file as an image", {"notes.txt": b"remember the milk\n"}, image_job("notes.txt"),
     "params.startImage: 'notes.txt' is not an image the API takes: it holds text"),
    ("an MP4 renamed .png", {"clip.png": MP4_HEAD}, image_job("clip.png"),
     "it is an MP4/MOV video"),
    ("a JPEG named .png", {"photo.png": JPEG_HEAD}, image_job("photo.png"),
     "'photo.png' is named as a PNG image but holds a JPEG image — rename it to .jpg"),
    ("an empty image", {"blank.png": b""}, image_job("blank.png"), "it is empty"),
    ("a symlink to /etc/shadow", {"knight.png": "->/etc/shadow"}, image_job("knight.png"),
     "resolves to '/etc/shadow', outside the manifest's folder"),
    ("a path up and out", {}, image_job("../elsewhere.png"), "outside the manifest's folder"),
    ("a home path", {}, image_job("~/knight.png"), "--allow-outside-files"),
    ("an image as a driving video", {"hero.png": png_bytes(), "move.mp4": png_bytes()},
     "version: 1\njobs:\n  - id: a\n    model: model_kling-v2-6-motion-control\n"
     "    params: {image: hero.png, video: move.mp4, characterOrientation: image}\n",
     "params.video: 'move.mp4' is not a video the API takes: it is a PNG image"),
    ("a whitespace prompt", {}, job("{prompt: '   '}"),
     "params.prompt: the prompt is only whitespace"),
    ("a whitespace prompt in a list", {},
     f"version: 1\njobs:\n  - id: a\n    {T2V}\n    prompts: [fine, '\t ']\n",
     "job 'a-0002' (model_kling-v3-t2v-4k): params.prompt: the prompt is only whitespace"),
    ("a whitespace shot prompt", {},
     job("{prompt: hi, duration: '5', multiPrompt: [{prompt: ' ', duration: '5'}]}"),
     "params.multiPrompt[0].prompt: the prompt is only whitespace"),
]


@pytest.mark.parametrize(("files", "text", "expected"), [c[1:] for c in INPUT_CASES],
                         ids=[c[0] for c in INPUT_CASES])
def test_inputs_are_checked_for_content_and_place(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], files: dict[str, bytes | str],
    text: str, expected: str,
) -> None:
    folder = tmp_path / "project"
    folder.mkdir()
    place(folder, files)
    (tmp_path / "elsewhere.png").write_bytes(png_bytes())
    code, out = validate(folder, text, capsys)
    assert code == 2 and expected in out and "Traceback" not in out, out


def test_outside_files_are_allowed_by_the_switch(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "library").mkdir()
    (tmp_path / "library" / "knight.png").write_bytes(png_bytes())
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "knight.png").symlink_to(tmp_path / "library" / "knight.png")
    manifest = folder / "m.yaml"
    manifest.write_text(image_job("knight.png") + image_job("../library/knight.png")
                        .replace("version: 1\njobs:\n", "").replace("id: a", "id: b"))
    assert main(["validate", str(manifest)]) == 2
    capsys.readouterr()
    assert main(["validate", str(manifest), "--allow-outside-files"]) == 0


# --- prompts files: line breaks, CSV that is not CSV, problems named after the job --------

def csv_job(name: str = "p.csv") -> str:
    return f"version: 1\njobs:\n  - id: c\n    {T2V}\n    promptsFile: {name}\n"


PROMPTS_FILE_CASES = [
    ("a row too short", 'prompt,negativePrompt\nok,x\nshort\n', "p.csv:3:1 job 'c-0002'"),
    ("a number cell of nan", "prompt,cfgScale\nok,0.5\nfine,nan\n",
     "p.csv:3:1 job 'c-0002' (model_kling-v3-t2v-4k): params.cfgScale: 'nan' is not of type"),
    ("a whitespace cell", 'prompt\nok\n"   "\n', "p.csv:3:1 job 'c-0002'"),
    ("an unterminated quote", 'prompt\nok\n"runs to the end\nof the file\n',
     "p.csv:3:1 job 'c': promptsFile: this is not valid CSV: unexpected end of data"),
    ("a field over the csv limit", 'prompt\n"' + "x" * 140_000 + '"\n', "not valid CSV"),
    ("a stray quote", 'prompt\n"a"b\n', "p.csv:2:1 job 'c': promptsFile: this is not valid CSV"),
    ("a header without a name", "prompt,\nok,lost text\n", "column 2 of the header has no name"),
    ("a header named twice", "prompt,prompt\na,b\n", "column 'prompt' appears twice"),
]


@pytest.mark.parametrize(("content", "expected"), [c[1:] for c in PROMPTS_FILE_CASES],
                         ids=[c[0] for c in PROMPTS_FILE_CASES])
def test_prompts_file_problems_are_located_and_named_after_the_job(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, expected: str
) -> None:
    (tmp_path / "p.csv").write_text(content, newline="")
    code, out = validate(tmp_path, csv_job(), capsys)
    assert code == 2 and expected in out and "Traceback" not in out, out


def plan_prompts(tmp_path: Path, text: str, capsys: pytest.CaptureFixture[str]) -> list[str]:
    import json

    path = tmp_path / "m.yaml"
    path.write_text(text)
    capsys.readouterr()
    assert main(["plan", str(path), "--json"]) == 0
    return [j["prompt"] for j in json.loads(capsys.readouterr().out)["jobs"]]


def test_a_csv_cell_keeps_its_line_breaks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "p.csv").write_bytes(b'prompt\r\n"two\nlines"\r\n"three\r\nlines"\r\nlast\r\n')
    assert plan_prompts(tmp_path, csv_job(), capsys) == ["two\nlines", "three\r\nlines", "last"]


@pytest.mark.parametrize("separator", ["\u2028", "\u2029", "\x85", "\x0b", "\x0c", "\x1e"])
def test_a_text_line_splits_at_newline_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], separator: str
) -> None:
    (tmp_path / "p.txt").write_text(f"first\r\nsec{separator}ond\nthird\n", newline="")
    prompts = plan_prompts(tmp_path, csv_job("p.txt"), capsys)
    assert prompts == ["first", f"sec{separator}ond", "third"]


def test_x_keys_at_the_top_hold_anchors_for_reuse(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = (f"version: 1\nx-shot: &shot {{duration: '5', negativePrompt: blur}}\n"
            f"jobs:\n  - id: a\n    {T2V}\n    params: {{<<: *shot, prompt: hi}}\n")
    code, out = validate(tmp_path, text, capsys)
    assert code == 0, out
    code, out = validate(tmp_path, text.replace("x-shot", "shot"), capsys)
    assert code == 2 and "unknown top-level key 'shot'" in out


@pytest.mark.usefixtures("api_credentials")
@pytest.mark.parametrize("where", ["a-file", "a-file/below"])
def test_an_output_folder_that_is_a_file_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], quiet_simulator: Simulator, where: str
) -> None:
    (tmp_path / "a-file").write_text("not a folder")
    manifest = write_manifest(tmp_path, t2v_jobs(1))
    before = sum(quiet_simulator.stats.requests_by_endpoint.values())
    capsys.readouterr()
    code = main(["run", str(manifest), "-o", str(tmp_path / where),
                 "--base-url", quiet_simulator.base_url, *FAST_RUN])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert str(tmp_path / where) in err
    assert sum(quiet_simulator.stats.requests_by_endpoint.values()) == before
