"""What the tests share, one module per kind; import as `from tests.helpers.X import ...`.

- `http`: tiny in-process HTTP servers with exact fault shapes, and `FakeTime`.
- `simulator`: the fast simulator settings (`FAST_CONFIG`) and `SimClient`, a raw HTTP client.
- `runs`: end-to-end `run` helpers: a simulator in a background thread, manifests on disk,
  `run_cli` in-process or `start_run` as a real process, and readers of the output folder.
- `media`: small valid input files (`png_bytes`).

Fixtures live in `tests/conftest.py`, built from these.
"""
