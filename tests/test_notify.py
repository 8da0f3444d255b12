"""`run --notify-command` and `--notify-url`: a real command reading the summary on its
stdin, a real aiohttp server on loopback receiving the POST, failures that stay warnings,
and a URL token that appears in no output and no file of the folder.
"""

from __future__ import annotations

import json
import shlex
import signal
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio.from_thread
import pytest
from aiohttp import web

from runner.cli import main
from tests.helpers.runs import (
    background_simulator,
    finish,
    run_cli,
    start_run,
    t2v_jobs,
    wait_for_events,
    write_manifest,
)

pytestmark = pytest.mark.usefixtures("api_credentials")

TOKEN = "T0KEN-s3cr3t-4f9a"
RECORDER = """import sys
open(sys.argv[1], "wb").write(sys.stdin.buffer.read())
sys.exit(int(sys.argv[2]) if len(sys.argv) > 2 else 0)
"""


def recorder(tmp_path: Path, exit_code: int = 0) -> tuple[str, Path]:
    """A shell command that writes its stdin to a file and exits `exit_code`."""
    script = tmp_path / "record.py"
    script.write_text(RECORDER)
    sink = tmp_path / "notified.json"
    command = " ".join(shlex.quote(str(x)) for x in (sys.executable, script, sink, exit_code))
    return command, sink


@dataclass
class Hook:
    """A webhook on loopback: what it received, and the status it answers."""

    url: str
    status: int = 200
    received: list[dict[str, Any]] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)


@contextmanager
def webhook(status: int = 200) -> Iterator[Hook]:
    """A real aiohttp server on a loopback port, served from another thread."""
    hook = Hook(url="", status=status)

    async def receive(request: web.Request) -> web.Response:
        hook.received.append(await request.json())
        hook.paths.append(request.path_qs)
        return web.json_response({"ok": hook.status < 300}, status=hook.status)

    async def serve() -> web.AppRunner:
        app = web.Application()
        app.router.add_post("/{tail:.*}", receive)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        hook.url = f"http://127.0.0.1:{port}/hooks/{TOKEN}?token={TOKEN}"
        return runner

    with anyio.from_thread.start_blocking_portal() as portal:
        runner = portal.call(serve)
        try:
            yield hook
        finally:
            portal.call(runner.cleanup)


def nonzero(counts: dict[str, int]) -> dict[str, int]:
    """The states that hold jobs (the summary names every state, 0 included)."""
    return {state: n for state, n in counts.items() if n}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_log(log: Path, text: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log.exists() and text in log.read_text(errors="replace"):
            return
        time.sleep(0.02)
    raise AssertionError(f"no {text!r} in {log}")


def no_token_in_folder(out: Path) -> None:
    for path in out.rglob("*"):
        if path.is_file():
            assert TOKEN.encode() not in path.read_bytes(), path


def test_the_command_gets_the_summary_as_json_on_its_stdin(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path, t2v_jobs(3))
    out = tmp_path / "out"
    command, sink = recorder(tmp_path)
    with background_simulator() as sim:
        assert run_cli(manifest, out, sim, "--notify-command", command) == 0
    summary = json.loads(sink.read_text())
    assert summary["exitCode"] == 0 and summary["outcome"] == "done"
    assert nonzero(summary["counts"]) == {"succeeded": 3} and summary["jobs"] == 3
    assert summary["cuSpent"] == 900 and summary["files"] == 3
    assert summary["missingFiles"] == 0 and summary["halt"] is None
    assert summary["folder"] == str(out.resolve())
    assert summary["manifest"] == str(manifest.resolve())
    assert summary["started"] <= summary["ended"] and summary["ended"].endswith("Z")


def test_the_url_is_posted_the_summary_with_a_text_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = write_manifest(tmp_path, t2v_jobs(2))
    out = tmp_path / "out"
    with background_simulator() as sim, webhook() as hook:
        capsys.readouterr()
        assert run_cli(manifest, out, sim, "--notify-url", hook.url) == 0
    [body] = hook.received
    assert hook.paths == [f"/hooks/{TOKEN}?token={TOKEN}"]
    assert nonzero(body["counts"]) == {"succeeded": 2} and body["exitCode"] == 0
    assert body["text"] == "kling-batch: out — 2 succeeded — 600 CU — exit 0 (done)"
    captured = capsys.readouterr()
    assert "warning" not in captured.err and TOKEN not in captured.out + captured.err


def test_a_failing_command_is_a_warning_and_the_exit_code_is_the_batchs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = write_manifest(tmp_path, t2v_jobs(2))
    command, sink = recorder(tmp_path, exit_code=3)
    with background_simulator() as sim:
        assert run_cli(manifest, tmp_path / "out", sim, "--notify-command", command) == 0
    assert json.loads(sink.read_text())["exitCode"] == 0  # it ran, then failed
    err = capsys.readouterr().err
    assert "warning: --notify-command exited with 3" in err
    assert str(sink) not in err  # the command is never echoed


def test_a_command_past_the_timeout_is_a_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("runner.cli.notify.NOTIFY_TIMEOUT", 0.5)
    manifest = write_manifest(tmp_path, t2v_jobs(1))
    command = f"{shlex.quote(sys.executable)} -c 'import time; time.sleep(30)'"
    with background_simulator() as sim:
        assert run_cli(manifest, tmp_path / "out", sim, "--notify-command", command) == 0
    assert "--notify-command did not finish within 0.5 s" in capsys.readouterr().err


def test_an_http_error_is_a_warning_naming_only_scheme_and_host(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = write_manifest(tmp_path, t2v_jobs(2), settings={"maxFailures": 1})
    out = tmp_path / "out"
    with background_simulator(faults={"job_failure": 1.0}) as sim, webhook(500) as hook:
        capsys.readouterr()
        code = main(["-vv", "run", str(manifest), "-o", str(out), "--base-url", sim.base_url,
                     "--auto-retries", "0", "--notify-url", hook.url, "--settle", "0.5",
                     "--poll-interval", "0.05", "--poll-max", "0.2", "-q"])
    assert code == 3  # halted by maxFailures: the notifier does not change it
    assert hook.received and hook.received[0]["outcome"] == "halted"
    captured = capsys.readouterr()
    host = hook.url.split("/hooks/")[0]
    assert f"warning: --notify-url {host} answered HTTP 500" in captured.err
    assert TOKEN not in captured.out + captured.err
    no_token_in_folder(out)


def test_a_refused_connection_is_a_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = write_manifest(tmp_path, t2v_jobs(1))
    url = f"http://127.0.0.1:{free_port()}/hook?token={TOKEN}"
    with background_simulator() as sim:
        assert run_cli(manifest, tmp_path / "out", sim, "--notify-url", url) == 0
    err = capsys.readouterr().err
    assert "warning: --notify-url http://127.0.0.1:" in err and "could not be reached" in err
    assert TOKEN not in err


def test_an_interrupted_run_notifies_with_exit_130(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path, t2v_jobs(3))
    out = tmp_path / "out"
    command, sink = recorder(tmp_path)
    with background_simulator(job_seconds=(60.0, 60.0)) as sim:
        proc = start_run(manifest, out, sim, "--notify-command", command)
        wait_for_events(out, "submitted", 3)
        proc.send_signal(signal.SIGINT)
        wait_for_log(tmp_path / "run.log", "draining")
        proc.send_signal(signal.SIGINT)
        log = finish(proc, out, timeout=60)
    assert proc.returncode == 130, log
    summary = json.loads(sink.read_text())
    assert summary["exitCode"] == 130 and summary["outcome"] == "interrupted"
    assert nonzero(summary["counts"]) == {"submitted": 3}


def test_notifiers_can_be_manifest_settings(tmp_path: Path) -> None:
    command, sink = recorder(tmp_path)
    manifest = write_manifest(tmp_path, t2v_jobs(1), settings={"notifyCommand": command})
    with background_simulator() as sim:
        assert run_cli(manifest, tmp_path / "out", sim) == 0
    assert nonzero(json.loads(sink.read_text())["counts"]) == {"succeeded": 1}


def test_a_bad_notify_url_setting_is_refused_without_quoting_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = write_manifest(tmp_path, t2v_jobs(1),
                              settings={"notifyUrl": f"ftp://hooks.example/{TOKEN}"})
    assert main(["run", str(manifest), "-o", str(tmp_path / "out"), "--simulate"]) == 2
    err = capsys.readouterr().err
    assert "settings.notifyUrl" in err and TOKEN not in err
    manifest = write_manifest(tmp_path, t2v_jobs(1))
    assert main(["run", str(manifest), "-o", str(tmp_path / "out"), "--simulate",
                 "--notify-url", f"nope {TOKEN}"]) == 2
    assert TOKEN not in capsys.readouterr().err
