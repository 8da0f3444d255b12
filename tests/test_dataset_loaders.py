"""The output folder in dataset tools, with the real packages: Hugging Face `datasets`
(VideoFolder from metadata.jsonl, the folder itself through its dataset card, and the
WebDataset builder on an export) and `webdataset`. Decoding stays off: the tests read
paths and bytes, so no video decoder (torchcodec) is needed."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runner.cli import main
from runner.export import sample_key
from tests.helpers.batches import HOSTILE, HOSTILE_PROMPT, SUCCEEDED, simulated_batch
from tests.helpers.runs import ALL_MODELS

ASKED = {job["id"]: job["params"] for job in [*ALL_MODELS, HOSTILE]}


@pytest.fixture(scope="module")
def batch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return simulated_batch(tmp_path_factory.mktemp("batch"))


@pytest.fixture(autouse=True)
def offline_hub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No request to the Hub, and every cache in the test's folder."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    yield


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def load(*args: Any, cache: Path, **kw: Any) -> Any:
    from datasets import Video, load_dataset

    ds = load_dataset(*args, split="train", cache_dir=str(cache), **kw)
    column = "video" if "video" in ds.features else "mp4"
    return ds.cast_column(column, Video(decode=False))


def test_metadata_loads_as_one_videofolder_table_across_all_five_models(
    batch: Path, tmp_path: Path
) -> None:
    ds = load("videofolder", data_dir=str(batch), cache=tmp_path)
    assert sorted(ds["job"]) == sorted(SUCCEEDED)  # the failed job has no file, no row
    params = ds.features["params"]
    # One struct for every model: the union of their params, None where a model has none.
    for name in ("prompt", "startImage", "duration", "characterOrientation", "elements"):
        assert name in params, name
    models = {row["model"] for row in ds}
    assert models == {job["model"] for job in ALL_MODELS}
    for row in ds:
        path = Path(row["video"]["path"])
        assert path.is_file() and sha256(path.read_bytes()) == row["sha256"]
        assert (row["jobId"].startswith("job_"), row["assetId"].startswith("asset_")) == (
            True, True)
    hostile = next(row for row in ds if row["job"] == "hostile")
    assert hostile["prompt"] == HOSTILE_PROMPT


def test_the_folder_loads_by_its_dataset_card(batch: Path, tmp_path: Path) -> None:
    # Beside the videos lie posters (JPEG), results.csv and the ledger: the card's config
    # names the videos and metadata.jsonl, so the folder is still a VideoFolder.
    ds = load(str(batch), cache=tmp_path)
    assert sorted(ds["job"]) == sorted(SUCCEEDED)


def export(batch: Path, out: Path, *extra: str) -> list[Path]:
    assert main(["export", str(batch), "--webdataset", str(out), *extra]) == 0
    return sorted(out.glob("shard-*.tar"))


@pytest.mark.filterwarnings("ignore::ResourceWarning")  # webdataset leaves its tar files to GC
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_webdataset_export_reads_with_webdataset(batch: Path, tmp_path: Path) -> None:
    import webdataset as wds

    shards = export(batch, tmp_path / "wds", "--shard-size", "4")
    assert [p.name for p in shards] == ["shard-000000.tar", "shard-000001.tar"]
    seen = list(wds.WebDataset([str(p) for p in shards], shardshuffle=False))
    assert sorted(s["__key__"] for s in seen) == sorted(SUCCEEDED)
    for sample in seen:
        meta = json.loads(sample["json"])
        assert sha256(sample["mp4"]) == meta["sha256"] and len(sample["mp4"]) == meta["bytes"]
        assert meta["key"] == sample["__key__"] and meta["job"] == sample["__key__"]
        assert set(meta) >= {"request", "model", "jobId", "assetId", "sha256", "cost"}
        assert json.loads(meta["request"]).get("prompt") == meta["prompt"]
        assert meta["cost"] > 0


def test_a_webdataset_export_loads_with_datasets(batch: Path, tmp_path: Path) -> None:
    shards = export(batch, tmp_path / "wds", "--shard-size", "2")
    ds = load("webdataset", data_files={"train": [str(p) for p in shards]}, cache=tmp_path)
    assert sorted(ds["__key__"]) == sorted(SUCCEEDED)
    for row in ds:
        meta = row["json"]
        assert sha256(row["mp4"]["bytes"]) == meta["sha256"]
        request = json.loads(meta["request"])  # text: every model's fields survive
        assert request == ASKED[row["__key__"]]


@pytest.mark.parametrize(
    ("path", "key"),
    [("videos/a.mp4", "a"), ("videos/take.2.mp4", "take%2E2"), ("videos/x_2.mp4", "x_2"),
     ("videos/a..b.mp4", "a%2E%2Eb"), ("videos/odd.MP4", "odd")],
)  # fmt: skip
def test_sample_keys_hold_no_dot(path: str, key: str) -> None:
    assert sample_key(path) == key and "." not in sample_key(path)
