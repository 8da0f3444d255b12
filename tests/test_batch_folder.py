"""A folder is one batch: one manifest, one API origin, one account — and a manifest already
run into one folder gets no silent second one (issue 12, items 1-3).

End to end through `kling-batch run` against the simulator, plus table tests of the pure
decisions (`batch_refusal`, `claimed`, `account_of`, `default_index_path`).
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from runner.api import Credentials, account_of, api_origin
from runner.cli import main
from runner.outdir import (
    BATCH_NAME,
    SIMULATOR,
    BatchIdentity,
    FolderBatch,
    batch_refusal,
    claimed,
    default_index_path,
)
from tests.helpers.runs import FAST_RUN, background_simulator, run_cli, t2v_jobs, write_manifest

pytestmark = pytest.mark.usefixtures("api_credentials")


def run_here(manifest: str, base_url: str, *extra: str) -> int:
    """`kling-batch run MANIFEST` with the default output folder (relative to the cwd)."""
    return main(["run", manifest, "--base-url", base_url, *FAST_RUN, *extra])


def metadata_rows(out: Path) -> list[dict[str, object]]:
    return [json.loads(x) for x in (out / "metadata.jsonl").read_text().splitlines()]


def test_the_same_manifest_from_another_directory_is_refused_not_paid_twice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    project = tmp_path / "proj"
    write_manifest(project, t2v_jobs(5), name="int.yaml")
    with background_simulator() as sim:
        monkeypatch.chdir(project)
        assert run_here("int.yaml", sim.base_url) == 0
        paid = sum(sim.stats.submissions_by_fingerprint.values())
        monkeypatch.chdir(tmp_path)
        capsys.readouterr()
        assert run_here("proj/int.yaml", sim.base_url) == 2
        err = capsys.readouterr().err
        first = project / "output" / "int"
        assert f"was already run into {first} (5 job(s) submitted there)" in err
        assert f"resume there with -o {first}, or pass --new-batch" in err
        assert sum(sim.stats.submissions_by_fingerprint.values()) == paid
        assert not (tmp_path / "output").exists()  # nothing was made for the refused run
        # Resuming where it was run pays nothing; a second batch on purpose pays again.
        assert run_here("proj/int.yaml", sim.base_url, "-o", str(first)) == 0
        assert sum(sim.stats.submissions_by_fingerprint.values()) == paid
        assert run_here("proj/int.yaml", sim.base_url, "--new-batch") == 0
        assert sum(sim.stats.submissions_by_fingerprint.values()) == 2 * paid


def test_a_copy_of_a_manifest_is_known_by_its_content(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    original = write_manifest(tmp_path / "a", t2v_jobs(2))
    copy = tmp_path / "b" / "batch.yaml"
    copy.parent.mkdir()
    copy.write_bytes(original.read_bytes())
    with background_simulator() as sim:
        assert run_cli(original, tmp_path / "out-a", sim) == 0
        capsys.readouterr()
        assert run_cli(copy, tmp_path / "out-b", sim) == 2
        assert "was already run into" in capsys.readouterr().err
        assert sum(sim.stats.submissions_by_fingerprint.values()) == 2


def test_another_manifest_into_the_same_folder_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Two manifests named shots.yaml share ./output/shots/ by default: they used to mix
    # (21 metadata rows for two manifests).
    first = write_manifest(tmp_path / "one", t2v_jobs(2, "one"), name="shots.yaml")
    second = write_manifest(tmp_path / "two", t2v_jobs(3, "two"), name="shots.yaml")
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "output" / "shots"
    with background_simulator() as sim:
        assert run_here(str(first), sim.base_url) == 0
        capsys.readouterr()
        assert run_here(str(second), sim.base_url) == 2
        err = capsys.readouterr().err
        assert f"{out} holds the batch of {first}, not of {second}: a folder is one batch" in err
        assert "--continue-batch" in err and "Traceback" not in err
        assert sum(sim.stats.submissions_by_fingerprint.values()) == 2
        assert len(metadata_rows(out)) == 2
        # When the user says the second manifest continues the batch, it does.
        assert run_here(str(second), sim.base_url, "--continue-batch") == 0
        assert run_here(str(second), sim.base_url) == 0  # now it is this batch's manifest
    batch = json.loads((out / BATCH_NAME).read_text())
    assert batch["manifests"] == [str(first), str(second)]


def test_an_edited_manifest_continues_its_batch(tmp_path: Path) -> None:
    jobs = t2v_jobs(2)
    manifest = write_manifest(tmp_path, jobs)
    out = tmp_path / "out"
    with background_simulator() as sim:
        assert run_cli(manifest, out, sim) == 0
        manifest = write_manifest(tmp_path, [*jobs, *t2v_jobs(1, "more")])
        assert run_cli(manifest, out, sim) == 0
        assert sum(sim.stats.submissions_by_fingerprint.values()) == 3


def test_a_simulated_folder_is_never_a_real_batch_and_the_reverse(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = write_manifest(tmp_path, t2v_jobs(2))
    simulated, real = tmp_path / "simulated", tmp_path / "real"
    assert main(["run", str(manifest), "-o", str(simulated), "--simulate", "-q"]) == 0
    with background_simulator() as sim:
        capsys.readouterr()
        assert run_cli(manifest, simulated, sim, "--new-batch") == 2
        err = capsys.readouterr().err
        assert "run against the built-in simulator (--simulate): its videos are test clips" in err
        assert sum(sim.stats.requests_by_endpoint.values()) == 0
        # The simulated batch paid nothing: a real one elsewhere needs no --new-batch.
        assert run_cli(manifest, real, sim) == 0
    capsys.readouterr()
    assert main(["run", str(manifest), "-o", str(real), "--simulate", "-q"]) == 2
    err = capsys.readouterr().err
    assert "--simulate would poll its jobIds at the simulator" in err
    assert main(["status", str(simulated)]) == 0
    assert "built-in simulator" in capsys.readouterr().out


def test_another_api_origin_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = write_manifest(tmp_path, t2v_jobs(2))
    out = tmp_path / "out"
    # Both alive at once, so that the second cannot get the first one's freed port.
    with background_simulator() as first, background_simulator() as second:
        assert run_cli(manifest, out, first) == 0
        origin = api_origin(first.base_url)
        capsys.readouterr()
        assert run_cli(manifest, out, second, "--continue-batch") == 2  # never for an origin
        err = capsys.readouterr().err
        assert f"holds a batch run against {origin}, not {api_origin(second.base_url)}" in err
        assert sum(second.stats.requests_by_endpoint.values()) == 0


def test_other_credentials_are_refused_unless_the_batch_continues(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = write_manifest(tmp_path, t2v_jobs(2))
    out = tmp_path / "out"
    with background_simulator() as sim:
        assert run_cli(manifest, out, sim) == 0
        monkeypatch.setenv("SCENARIO_SDK_API_KEY", "another-key")
        capsys.readouterr()
        assert run_cli(manifest, out, sim) == 2
        assert "run with other credentials" in capsys.readouterr().err
        assert run_cli(manifest, out, sim, "--continue-batch") == 0
        assert sum(sim.stats.submissions_by_fingerprint.values()) == 2


def test_an_unwritable_index_is_a_warning_not_a_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "state").write_text("a file where a folder should be")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    manifest = write_manifest(tmp_path, t2v_jobs(1))
    with background_simulator() as sim:
        assert run_cli(manifest, tmp_path / "out", sim) == 0
    assert "the index of batches" in capsys.readouterr().err


def test_an_unreadable_batch_record_is_one_line_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = write_manifest(tmp_path, t2v_jobs(1))
    out = tmp_path / "out"
    out.mkdir()
    (out / BATCH_NAME).write_text("{torn")
    with background_simulator() as sim:
        assert run_cli(manifest, out, sim) == 2
        assert sum(sim.stats.requests_by_endpoint.values()) == 0
    err = capsys.readouterr().err
    assert f"{out / BATCH_NAME} cannot be read" in err and len(err.strip().splitlines()) == 1


def test_a_folder_from_before_batch_records_is_adopted(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path, t2v_jobs(2))
    out = tmp_path / "out"
    with background_simulator() as sim:
        assert run_cli(manifest, out, sim) == 0
        (out / BATCH_NAME).unlink()  # as 0.1 left it: a ledger, no batch.json
        assert run_cli(manifest, out, sim) == 0
        assert sum(sim.stats.submissions_by_fingerprint.values()) == 2
    assert (out / BATCH_NAME).exists()


# --- the pure decisions ---------------------------------------------------------------------

WANTED = BatchIdentity("/p/int.yaml", "h1", "https://api.example", "key-1")
RECORDED = FolderBatch(("/p/int.yaml",), ("h0", "h1"), "https://api.example", ("key-1",), "t")
OUT = Path("/out")


@pytest.mark.parametrize(
    ("wanted", "continue_batch", "fragment"),
    [
        (WANTED, False, None),
        (BatchIdentity("/p/int.yaml", "h9", "https://api.example", "key-1"), False, None),
        (BatchIdentity("/elsewhere/int.yaml", "h0", "https://api.example", "key-1"), False,
         None),  # moved, same content
        (BatchIdentity("/q/other.yaml", "h9", "https://api.example", "key-1"), False,
         "holds the batch of /p/int.yaml, not of /q/other.yaml"),
        (BatchIdentity("/q/other.yaml", "h9", "https://api.example", "key-1"), True, None),
        (BatchIdentity("/p/int.yaml", "h1", "https://api.example", "key-2"), False,
         "other credentials"),
        (BatchIdentity("/p/int.yaml", "h1", "https://api.example", "key-2"), True, None),
        (BatchIdentity("/p/int.yaml", "h1", "https://api.example", None), False, None),
        (BatchIdentity("/p/int.yaml", "h1", SIMULATOR, None), True, "--simulate would poll"),
        (BatchIdentity("/p/int.yaml", "h1", "https://staging.example", "key-1"), True,
         "not https://staging.example"),
        (BatchIdentity("/p/int.yaml", "h1", None, None), False, None),  # not checked
    ],
)
def test_batch_refusal(
    wanted: BatchIdentity, continue_batch: bool, fragment: str | None
) -> None:
    refusal = batch_refusal(OUT, RECORDED, wanted, continue_batch=continue_batch)
    assert (refusal is None) == (fragment is None)
    if refusal is not None and fragment is not None:
        assert fragment in str(refusal) and refusal.exit_code == 2


def test_a_simulated_batch_refuses_every_real_origin() -> None:
    simulated = FolderBatch(("/p/int.yaml",), ("h1",), SIMULATOR, (), "t")
    refusal = batch_refusal(OUT, simulated, WANTED, continue_batch=True)
    assert refusal is not None and "test clips" in str(refusal)


def test_claimed_adds_what_is_new_and_keeps_the_origin() -> None:
    moved = BatchIdentity("/elsewhere/int.yaml", "h2", "https://api.example", "key-2")
    batch = claimed(RECORDED, moved, "later")
    assert batch.manifests == ("/p/int.yaml", "/elsewhere/int.yaml")
    assert batch.hashes == ("h0", "h1", "h2") and batch.accounts == ("key-1", "key-2")
    assert batch.created == "t" and claimed(batch, moved, "x") == batch
    fresh = claimed(None, WANTED, "now")
    assert fresh == FolderBatch(("/p/int.yaml",), ("h1",), "https://api.example", ("key-1",),
                                "now")


def basic(key: str, secret: str = "s") -> Credentials:
    return Credentials("Basic " + base64.b64encode(f"{key}:{secret}".encode()).decode())


def jwt(claims: dict[str, object]) -> Credentials:
    body = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    return Credentials(f"Bearer eyJhbGciOiJIUzI1NiJ9.{body}.signature")


def test_account_of_names_the_key_or_the_subject_never_the_secret() -> None:
    assert account_of(basic("k1")) == account_of(basic("k1", "another secret"))
    assert account_of(basic("k1")) != account_of(basic("k2"))
    assert str(account_of(basic("k1"))).startswith("key-")
    assert "k1" not in str(account_of(basic("k1")))
    assert str(account_of(jwt({"sub": "user_1"}))).startswith("sub-")
    assert account_of(jwt({"sub": "user_1"})) == account_of(jwt({"sub": "user_1", "iat": 2}))
    assert account_of(jwt({"iat": 1})) is None
    assert account_of(Credentials("Bearer opaque-token")) is None
    assert account_of(Credentials("Basic not-base64!")) is None


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"XDG_STATE_HOME": "/state", "HOME": "/home/u"}, "/state/kling-batch/batches.jsonl"),
        ({"HOME": "/home/u"}, "/home/u/.local/state/kling-batch/batches.jsonl"),
        ({"XDG_STATE_HOME": "relative", "HOME": "/home/u"},
         "/home/u/.local/state/kling-batch/batches.jsonl"),  # the spec: relative is ignored
        ({}, None),
    ],
)
def test_default_index_path(env: dict[str, str], expected: str | None) -> None:
    found = default_index_path(env)
    assert (str(found) if found else None) == expected


def test_cancel_against_another_origin_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = write_manifest(tmp_path, t2v_jobs(2))
    out = tmp_path / "out"
    with background_simulator(job_seconds=(60.0, 60.0)) as first, background_simulator() as other:
        assert run_cli(manifest, out, first, "--job-timeout", "0.3") == 1  # left in flight
        capsys.readouterr()
        assert main(["cancel", str(out), "--base-url", other.base_url]) == 2
        err = capsys.readouterr().err
        assert f"run against {api_origin(first.base_url)}, not {api_origin(other.base_url)}" in err
        assert sum(other.stats.requests_by_endpoint.values()) == 0
        assert main(["cancel", str(out), "--base-url", first.base_url]) == 0
