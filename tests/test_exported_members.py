"""What each package of runner/ exports, pinned, and the rule that keeps a name in one place.

As in httpx's tests/test_exported_members.py: a package's `__init__` re-exports the names
used from outside it and lists them, sorted, in `__all__`; the lists are written out here,
so adding or dropping an export is a visible change. Each exported name is defined in one
module of runner/, and code outside a package imports it from the package
(`from runner.ledger import JobRecord`), never from the module that defines it
(`from runner.ledger.records import JobRecord`). Inside a package, modules import one
another by module path, which keeps the package's `__init__` out of import cycles.
"""

from __future__ import annotations

import ast
import functools
import importlib
import inspect
import pkgutil
from collections import defaultdict
from pathlib import Path
from types import ModuleType

import pytest

import runner

PINNED: dict[str, list[str]] = {
    "runner.api": [
        "BULK_ASSETS", "DEFAULT_BASE_URL", "IMAGE_ASSET_LIMIT", "MIN_PART_SIZE",
        "PART_SIZE", "USER_AGENT", "AssetLookup", "AssetUploader", "Credentials",
        "DownloadedFile", "Failure", "Pacer", "RetryPolicy", "ScenarioClient", "UploadPart",
        "WireFormatError", "account_of", "api_origin", "cache_key", "credentials_from_env",
        "decode_body", "download_asset", "encode_json", "ensure_anonymous_session",
        "error_message", "failure_for_exception", "failure_for_status", "final_error",
        "jobs_query", "load_cache", "next_retry_delay", "parse_asset",
        "parse_created_asset_id", "parse_estimate", "parse_job", "parse_job_page",
        "parse_submission", "parse_upload_state", "parse_upload_ticket", "part_path",
        "part_ranges", "part_size_for", "path_segment", "retry_allowed",
        "retry_hint_from_headers", "should_retry", "size_problem", "uses_multipart",
    ],
    "runner.batch": [
        "REQUESTS_NAME", "Action", "Admission", "Bucket", "Budget", "Control",
        "Coordination", "Decision", "Endpoint", "Estimate", "FailureLimit", "Follower",
        "Gauge", "HaltReason", "JobBook", "Live", "ModelLimiters", "OverBudget",
        "PreparedRun", "Progress", "RateLimiter", "RunOptions", "RunResult", "Scheduler",
        "Selection", "Slots", "Snapshot", "Submitter", "Window", "Withdrawals", "WorkItem",
        "account_cap", "after_acceptance", "after_refusal", "api_sessions",
        "batch_identity", "cancel_jobs", "cancel_pending", "cancel_targets",
        "changed_fields", "changed_inputs", "check_patterns", "cost_text", "count_failures",
        "decide", "default_options", "ending_text", "estimate_jobs", "format_duration",
        "format_rate", "halt_reason_for", "id_matches", "keep_paid_numbers", "live_state",
        "local_cancellation", "opening_window", "pilot", "prepare_run", "progress_line",
        "record_cancellations", "reserve_slot", "retried_text", "run_batch", "select_jobs",
        "settle_leftovers", "work_items",
    ],
    "runner.cli": ["build_parser", "main"],
    "runner.export": [
        "SHARD_PATTERN", "Exported", "Sample", "sample_key", "samples", "shard_name",
        "shard_plan", "write_shards",
    ],
    "runner.ledger": [
        "LEDGER_NAME", "AssetRecord", "DownloadFailed", "Downloaded", "Event", "Finished",
        "InputFile", "Intended", "JobRecord", "JsonlLedger", "Ledger", "LedgerWriter",
        "Lost", "NotSubmitted", "Outcome", "OutcomeLost", "PollFailed", "Rejected",
        "Running", "Submitted", "Superseded", "SupersededFile", "TimedOut", "apply",
        "encode_event", "from_line", "kind_of", "load_records", "parse_lines", "replay",
        "to_line",
    ],
    "runner.manifest": [
        "Manifest", "flag_value", "load_manifest", "max_failures", "model_limit_flag",
    ],
    "runner.outdir": [
        "BATCH_NAME", "INDEX_NAME", "LOCK_NAME", "METADATA_NAME", "PLAN_NAME",
        "POSTERS_DIR", "PROVENANCE_NAME", "SIMULATOR", "SUPERSEDED_DIR", "BatchIdentity",
        "BatchRecord", "Destination", "Fetch", "FolderBatch", "IndexEntry", "LocalFolder",
        "LockInfo", "PlannedJob",
        "batch_refusal", "claimed", "complete_moves", "default_index_path",
        "ensure_posters", "file_matches", "file_sha256", "free_space", "fsync_dir",
        "hold_lock", "human_size", "is_new_folder", "metadata_rows", "move_file",
        "poster_jpeg", "poster_relpath", "read_batch", "read_batch_record", "read_index",
        "read_lock", "read_plan", "refuse_if_run_elsewhere", "remember",
        "remove_stale_parts", "run_elsewhere", "superseded_relpath", "verified_assets",
        "video_name_clashes", "video_relpath", "write_atomically", "write_batch",
        "write_batch_record", "write_failure", "write_hint", "write_metadata", "write_plan",
        "writing",
    ],
    "runner.cluster": [
        "DEFAULT_PATIENCE", "LEDGER_ENV", "MIGRATIONS", "SCHEMA_VERSION", "BatchCounts",
        "Claim", "Coordinator", "Database", "PostgresLedger", "SharedBatch", "SharedRun",
        "batch_location", "body_key", "cancel_unsubmitted", "check_ledger_url", "connected",
        "is_ledger_url", "migrate", "open_batch", "open_pool", "prepare_shared_run",
        "read_batch_events", "read_shared_batch", "require_batch", "safe_url",
        "session_options",
    ],
    "runner.objstore": [
        "DEFAULT_CAPACITY", "DEFAULT_REGION", "SCHEME", "SHA256_META", "ObjectStore",
        "ObjectStoreDestination", "S3Config", "S3Location", "Spool", "StoreViews",
        "StoredObject", "UploadTuning", "abort_upload", "b64_digest", "b64_of_hex",
        "bucket_problem", "client_config", "complete_store_moves", "composite_checksum",
        "default_spool_dir",
        "is_object_store_url", "is_transient", "open_object_destination", "open_store",
        "planned_jobs",
        "render_store_views", "stored_assets", "stored_object_problem", "stored_videos",
        "write_store_views",
    ],
    "runner.polling": [
        "CadencePolicy", "Durations", "InFlight", "JobGone", "ListWatcher", "NotFound",
        "PollMode", "PollPolicy", "PollTimeout", "is_not_found", "next_cursor",
        "next_listing_delay", "next_poll_delay", "server_seconds", "wait_terminal",
    ],
    "runner.reconcile": [
        "CLOCK_SKEW", "Held", "Intent", "Reconciler", "ambiguous_intents",
        "body_fingerprint", "listing_start", "match_intents",
    ],
    "runner.schemas": [
        "AssetInput", "SchemaRegistry", "default_schema_dir", "format_path", "parse_path",
        "suggest", "validity_check",
    ],
    "runner.simulator": [
        "FAULT_NAMES", "PROFILES", "Job", "JobSummary", "SimState", "Simulator",
        "SimulatorConfig", "SimulatorStats", "VideoSpec", "authorized", "encode_clip",
        "iso_ms", "request_fingerprint", "sign", "signature_ok", "start_simulator",
    ],
    "runner.views": [
        "CARD_MARK", "LEFT_ALONE", "PROMPT_EXCERPT", "RESULT_COLUMNS", "CardContext",
        "FailureGroup", "JobTiming", "JobView", "PlanSummary", "ReportContext", "ReportSummary",
        "Timeline", "bucket_peaks", "card_data", "cards_json", "cumulative", "excerpt",
        "failure_groups", "failure_reason", "files_present", "format_cost", "held_level",
        "human_bytes", "human_seconds", "job_seconds", "job_view", "job_views", "link",
        "md_code", "md_text", "percentile", "render_dataset_card", "render_report",
        "result_lines", "result_row", "script_json", "size_category", "spreadsheet_text",
        "state_counts", "status_exit_code", "status_json", "status_lines", "summarize",
        "summarize_plan", "timeline_of", "timeline_svg", "video_seconds",
    ],
}


# Exported names that another module of runner/ also defines, as a different object: pinned,
# so that a new one fails here, and so that renaming one away fails until its entry goes.
# They are the simulator's own versions: it shares no code with the client by design
# (runner/simulator/__init__.py).
KNOWN_HOMONYMS: dict[str, set[str]] = {
    "Outcome": {"runner.ledger.events", "runner.simulator.faults"},
    "Snapshot": {"runner.batch.progress", "runner.simulator.lifecycle"},
    "default_schema_dir": {"runner.schemas.registry", "runner.simulator.config"},
    "download_asset": {"runner.api.downloads", "runner.simulator.api_assets"},
    "video_seconds": {"runner.simulator.billing", "runner.views.plan_summary"},
}

RUNNER_DIR = Path(runner.__file__).parent


def _sort_key(name: str) -> tuple[int, str]:
    """The order of `__all__` (ruff's RUF022): CONSTANTS, then Classes, then the rest."""
    kind = 0 if name.isupper() else 1 if name[:1].isupper() else 2
    return kind, name


def _packages() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules(runner.__path__, "runner.") if m.ispkg)


@functools.cache
def _modules() -> dict[str, ModuleType]:
    """Every module of runner/, imported (not `__main__`: importing it runs the program)."""
    found: dict[str, ModuleType] = {"runner": runner}
    for info in pkgutil.walk_packages(runner.__path__, "runner."):
        if info.name.rpartition(".")[2] != "__main__":
            found[info.name] = importlib.import_module(info.name)
    return found


def _bound_names(target: ast.expr) -> set[str]:
    if isinstance(target, ast.Name):
        return {target.id}
    if isinstance(target, ast.Tuple | ast.List):
        return {name for element in target.elts for name in _bound_names(element)}
    return set()


def _defined_names(module: ModuleType) -> set[str]:
    """What a module defines: top-level def, class and assignment (an import defines
    nothing), and every class or function whose `__module__` is this module."""
    assert module.__file__ is not None
    tree = ast.parse(Path(module.__file__).read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                names |= _bound_names(target)
        elif isinstance(node, ast.AnnAssign):
            names |= _bound_names(node.target)
    for name, obj in vars(module).items():
        if (inspect.isclass(obj) or inspect.isfunction(obj)) and obj.__module__ == module.__name__:
            names.add(name)
    return {name for name in names if not name.startswith("__")}


def _inside(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def test_every_package_is_pinned() -> None:
    assert _packages() == sorted(PINNED)


@pytest.mark.parametrize("package", sorted(PINNED))
def test_all_is_pinned(package: str) -> None:
    assert PINNED[package] == sorted(PINNED[package], key=_sort_key), "pin them sorted"
    assert importlib.import_module(package).__all__ == PINNED[package]


@pytest.mark.parametrize("package", sorted(PINNED))
def test_every_exported_name_is_there_and_public(package: str) -> None:
    module = importlib.import_module(package)
    missing = [name for name in module.__all__ if not hasattr(module, name)]
    private = [name for name in module.__all__ if name.startswith("_")]
    assert missing == []
    assert private == []


def test_no_name_is_exported_by_two_packages() -> None:
    exporters: defaultdict[str, list[str]] = defaultdict(list)
    for package, names in PINNED.items():
        for name in names:
            exporters[name].append(package)
    assert {name: where for name, where in exporters.items() if len(where) > 1} == {}


def test_each_exported_name_is_defined_in_one_module() -> None:
    defined_in: defaultdict[str, set[str]] = defaultdict(set)
    for module_name, module in _modules().items():
        for name in _defined_names(module):
            defined_in[name].add(module_name)
    misplaced: list[str] = []
    homonyms: dict[str, set[str]] = {}
    for package in sorted(PINNED):
        for name in importlib.import_module(package).__all__:
            obj = getattr(importlib.import_module(package), name)
            homes = {m for m in defined_in[name] if _inside(m, package)}
            if inspect.isclass(obj) or inspect.isfunction(obj):
                homes = {obj.__module__} & homes
            if len(homes) != 1 or getattr(_modules()[min(homes)], name) is not obj:
                misplaced.append(f"{package}.{name}: defined in {sorted(defined_in[name])}")
            elif defined_in[name] != homes:
                homonyms[name] = defined_in[name]
    assert misplaced == [], "an export must be defined in one module of its own package"
    assert homonyms == KNOWN_HOMONYMS


def _module_name(path: Path) -> str:
    parts = path.relative_to(RUNNER_DIR.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _import_offences(path: Path, source: str, exports: dict[str, set[str]]) -> list[str]:
    """`file:line` of each import, in a module outside package P, of a name that P
    exports from one of P's modules (`from runner.P.m import X`, or the relative spelling)."""
    module = _module_name(path)
    here = module if path.name == "__init__.py" else module.rpartition(".")[0]
    offences: list[str] = []
    for node in ast.walk(ast.parse(source, filename=str(path))):
        if not isinstance(node, ast.ImportFrom):
            continue
        if node.level:
            base = here.rsplit(".", node.level - 1)[0] if node.level > 1 else here
            origin = f"{base}.{node.module}" if node.module else base
        else:
            origin = node.module or ""
        package = ".".join(origin.split(".")[:2])
        if package not in exports or origin == package or _inside(module, package):
            continue
        for alias in node.names:
            if alias.name == "*" or alias.name in exports[package]:
                where = path.relative_to(RUNNER_DIR.parent)
                offences.append(
                    f"{where}:{node.lineno}: from {origin} import {alias.name}"
                    f" (import it from {package})"
                )
    return offences


def _exports() -> dict[str, set[str]]:
    return {package: set(importlib.import_module(package).__all__) for package in _packages()}


def test_outside_a_package_its_names_come_from_the_package() -> None:
    exports = _exports()
    offences = [
        offence
        for path in sorted(RUNNER_DIR.rglob("*.py"))
        for offence in _import_offences(path, path.read_text(encoding="utf-8"), exports)
    ]
    if offences:
        pytest.fail("\n".join(["imported from a module, not from its package:", *offences]))


@pytest.mark.parametrize(
    ("where", "line", "offends"),
    [
        ("cli/x.py", "from runner.ledger.records import JobRecord", True),
        ("cli/x.py", "    from runner.outdir.lock import hold_lock", True),
        ("cli/x.py", "from ..ledger.records import JobRecord", True),
        ("cli/x.py", "from runner.ledger import JobRecord", False),
        ("cli/x.py", "from runner.schemas.registry import _walk_assets", False),
        ("ledger/x.py", "from runner.ledger.records import JobRecord", False),
        ("ledger/x.py", "from .records import JobRecord", False),
    ],
)
def test_the_import_rule_sees_offences(where: str, line: str, offends: bool) -> None:
    source = f"def f() -> None:\n{line}\n" if line.startswith(" ") else f"{line}\n"
    found = _import_offences(RUNNER_DIR / where, source, _exports())
    assert bool(found) is offends, found
