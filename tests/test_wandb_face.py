"""W&B as its users expect: one console line naming the run (offline: its directory and the upload
command), the run's frequencies, verdicts and steps in its summary, and a resume that continues the
same W&B run id. The offline run is read back from its own files: the .wandb transaction log, whose
records are wandb's protobufs (wandb >= 0.30 ships no Python reader for the file, so the framing,
LevelDB's log format, is unwrapped here)."""

import contextlib
import io
import json
import struct
from pathlib import Path
from types import SimpleNamespace

import pytest

from grok_lightning.loggers import WANDB_ID_FILE, wandb_line, wandb_summary
from grok_lightning.train import main
from tests.conftest import TINY, callbacks_off, metrics_rows, only_run, short_run_args

# Memorises at step 360 of 600 with one key frequency (4) and two frequency groups; 300 steps, then
# a resume to 600: the summary's numbers all come from the resumed start.
LEARNS = [*TINY, "model.n_neurons=8", "optim.lr=0.01", "data.train_fraction=0.7"]
KEEP = ("dft_sparsity", "fourier_stars")  # key_frequencies and frequency_groups
VERDICTS = ("verdict", "verdict_text", "outcome", "outcome_reason", "memorise_step", "fate", "stop_reason")

_BLOCK, _HEADER = 32768, 7  # LevelDB log: 32 KiB blocks; W&B's file header and each chunk's: 7 bytes
_FULL, _LAST = 1, 4


def wandb_records(path: Path):
    """Every wandb.proto Record of a .wandb file, in order."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B", data[:7]
    pos, chunks = _HEADER, []
    while pos + _HEADER <= len(data):
        if _BLOCK - pos % _BLOCK < _HEADER:  # a block's tail too short for a chunk header: padding
            pos += _BLOCK - pos % _BLOCK
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + _HEADER])
        if kind == 0:  # zeroed space past the last record
            break
        chunks.append(data[pos + _HEADER : pos + _HEADER + length])
        pos += _HEADER + length
        if kind in (_FULL, _LAST):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(b"".join(chunks))
            chunks = []
            yield record


def _items(items) -> dict:
    return {item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in items}


def read_offline_run(folder: Path) -> dict:
    """run id, final summary and history rows of one offline-run-* folder."""
    (log,) = folder.glob("*.wandb")
    out = {"id": None, "summary": {}, "history": []}
    for record in wandb_records(log):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            out["id"] = record.run.run_id
        elif kind == "summary":
            out["summary"].update(_items(record.summary.update))
        elif kind == "history":
            out["history"].append(_items(record.history.item))
    return out


@pytest.fixture(scope="module")
def resumed_wandb_run(tmp_path_factory):
    """A W&B offline run trained to step 300, then resumed to 600: (run dir, each start's stdout)."""
    root = tmp_path_factory.mktemp("runs")
    args = short_run_args(root, *LEARNS, *callbacks_off(*KEEP))
    args[args.index("logger=csv")] = "logger=wandb"
    outputs = [_stdout_of(["task=modadd", *args, "train.max_steps=300"])]
    outputs.append(_stdout_of([f"resume={only_run(root)}", "train.max_steps=600"]))
    return only_run(root), outputs


def _stdout_of(argv) -> str:
    out = io.StringIO()
    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stdout(out):
        mp.setenv("WANDB_MODE", "offline")
        assert main(argv) == 0
    return out.getvalue()


def offline_parts(run_dir: Path) -> list[dict]:
    return [read_offline_run(f) for f in sorted((run_dir / "wandb").glob("offline-run-*"))]


def test_each_start_names_its_wandb_run_in_one_line(resumed_wandb_run):
    run_dir, outputs = resumed_wandb_run
    folders = sorted((run_dir / "wandb").glob("offline-run-*"))
    assert len(folders) == 2  # W&B writes a folder per start; `wandb sync <run>/wandb` uploads both
    run_id = (run_dir / "wandb" / WANDB_ID_FILE).read_text().strip()
    for out, folder in zip(outputs, folders, strict=True):
        # ours, and none of W&B's own banner or footer lines ("wandb: ...")
        (line,) = [line for line in out.splitlines() if "W&B" in line or line.startswith("wandb")]
        assert line == f"W&B offline run {run_id}: {folder}; upload: wandb sync {run_dir / 'wandb'}"


def test_a_resume_continues_the_same_wandb_run_and_its_history(resumed_wandb_run):
    run_dir, _ = resumed_wandb_run
    first, second = offline_parts(run_dir)
    assert first["id"] == second["id"] == (run_dir / "wandb" / WANDB_ID_FILE).read_text().strip()
    logged = [
        [r["trainer/global_step"] for r in part["history"] if "train/loss" in r] for part in (first, second)
    ]
    assert max(logged[0]) < 300 <= min(logged[1])  # the second start goes on where the first stopped
    # together they hold the run's metrics.csv steps, each once, and the first start's last step
    # (299), which the extended run drops from metrics.csv: an uninterrupted run never logs it
    steps = [int(r["step"]) for r in metrics_rows(run_dir) if r["train/loss"]]
    assert logged[0] + logged[1] == sorted([*steps, 299])


def test_the_wandb_summary_has_frequencies_verdicts_and_steps(resumed_wandb_run):
    run_dir, _ = resumed_wandb_run
    summary = json.loads((run_dir / "summary.json").read_text())
    got = offline_parts(run_dir)[-1]["summary"]
    assert summary["key_frequencies"] and summary["frequency_groups"] and summary["memorise_step"]
    assert got["fourier/key_frequencies"] == summary["key_frequencies"]
    assert got["fourier/frequency_groups"] == summary["frequency_groups"]
    for key in VERDICTS:
        assert got[f"verdicts/{key}"] == summary[key], key


def test_wandb_summary_keeps_known_keys_and_skips_missing_ones():
    got = wandb_summary({"verdict": "grok", "memorise_step": None, "key_frequencies": [3, 14], "other": 1})
    assert got == {"verdicts/verdict": "grok", "fourier/key_frequencies": [3, 14]}


def test_an_online_run_is_named_by_its_url(tmp_path):
    online = SimpleNamespace(disabled=False, offline=False, url="https://wandb.ai/me/grok_lightning/runs/x")
    assert wandb_line(tmp_path, online) == "W&B run: https://wandb.ai/me/grok_lightning/runs/x"
    assert wandb_line(tmp_path, SimpleNamespace(disabled=True)) is None
