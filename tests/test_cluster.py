"""The README's cluster lines against a real SLURM scheduler: a one-node cluster on this machine
(scripts/slurm_cluster.sh; `make test-cluster` starts it and runs these tests).

- a 2-task sbatch job (`srun --kill-on-bad-exit=1 ... world_size=2`) gives the results.csv of the same
  grid run locally with workers=1;
- `scontrol requeue` in the middle of a batch (SLURM sends SIGTERM to every process of the job, SIGKILL
  after KillWait, and queues the job again under the same id): the restarted job trains only the
  batches that had no result file, and ends with the same results.csv;
- the same for one training run (resume= of the job's own run directory on restart): metrics.csv is
  byte-identical to an uninterrupted run's;
- `fabric run --accelerator=cpu --devices=2` inside a one-task allocation gives the same results.

Marked `cluster`: left out of `make test` and `make test-full`. Without a reachable slurmctld of the
private cluster ($GROK_SLURM_DIR, default /tmp/grok-slurm) every test skips, with the reason. Job ids
and sacct lines print with `pytest -s`.

Only the `rank` column of results.csv may differ from the workers=1 run's: it records which process
trained the batch (always 0 with one process; with two, a rank that is ahead takes unstarted batches
of the other, so it differs from run to run). Every other byte of the file is compared.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.cluster

REPO = Path(__file__).resolve().parents[1]
SLURM_DIR = Path(os.environ.get("GROK_SLURM_DIR", "/tmp/grok-slurm"))
SLURM_CONF = SLURM_DIR / "slurm.conf"
# the job scripts name the interpreter as the README does (.venv/bin/python from the submit directory)
PYTHON = (
    os.path.relpath(sys.executable, REPO) if Path(sys.executable).is_relative_to(REPO) else sys.executable
)
FABRIC = str(Path(PYTHON).with_name("fabric"))
JOB_TIMEOUT_S = 420  # one job, requeue included, on a loaded 2-core machine: about a minute
DONE_STATES = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL"}

# A tiny slice of configs/sweeps/parity_phase.yaml: 2 widths x 2 weight decays x 1 seed, one model per
# batch (4 batches of a few seconds each, so that a requeue lands in the middle of one).
GRID = [
    "sweep=parity_phase",
    "seeds=1",
    "grid.n_neurons=[8,16]",
    "grid.train_size=[200]",
    "grid.optim.weight_decay=[0.1,1.0]",
    "data.test_size=200",
    "train.max_steps=2000",
    "calibration.enabled=false",
    "max_models_per_group=1",
    "logger=csv",
]
N_BATCHES = 4
# One parity run of ~10 s of training on a loaded machine, checkpointed every 40 steps.
TRAIN = [
    "task=parity",
    "data.train_size=200",
    "data.test_size=200",
    "model.n_neurons=16",
    "train.max_steps=4000",
    "logger=csv",
    "train.progress_bar=false",
]
BATCH_DONE = re.compile(r"batch (g\d{3}-[0-9a-f]+-[0-9a-f]+) \(.*\): \d+ models x (\d+) steps")


def env() -> dict:
    return {**os.environ, "SLURM_CONF": str(SLURM_CONF)}


def slurm(*cmd: str, check: bool = True) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env(), timeout=60)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc.stdout


@pytest.fixture(scope="module")
def cluster():
    """The private cluster, up and with its node idle; skips (with the reason) when it is not."""
    if shutil.which("sbatch") is None or shutil.which("scontrol") is None:
        pytest.skip("SLURM is not installed (apt-get install -y slurm-wlm munge; then make test-cluster)")
    if not SLURM_CONF.is_file():
        pytest.skip(
            f"no cluster config at {SLURM_CONF}: scripts/slurm_cluster.sh starts one (make test-cluster)"
        )
    proc = subprocess.run(["scontrol", "ping"], capture_output=True, text=True, env=env(), timeout=60)
    if proc.returncode != 0 or "UP" not in proc.stdout:
        answer = ((proc.stdout + proc.stderr).strip().splitlines() or ["no answer"])[0]
        pytest.skip(f"slurmctld not reachable with SLURM_CONF={SLURM_CONF}: {answer}")
    deadline = time.monotonic() + 60
    while (state := slurm("sinfo", "-h", "-o", "%T").strip()) not in ("idle", "mixed", "allocated"):
        assert time.monotonic() < deadline, f"the cluster's node is {state!r}, not idle"
        time.sleep(1)
    jobs = []
    yield jobs
    for job in jobs:  # a failed test leaves nothing queued or running
        slurm("scancel", job, check=False)


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """The grid run locally, in one process (workers=1): the results every cluster run must give."""
    out = tmp_path_factory.mktemp("reference") / "sweep"
    proc = subprocess.run(
        [sys.executable, "-m", "grok_lightning.sweep", *GRID, f"out_dir={out}", "workers=1"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=JOB_TIMEOUT_S,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return out / "results.csv"


def job_script(tmp: Path, name: str, body: str, tasks: int = 2, cpus: int = 1) -> Path:
    """A batch script of the README's shape, writing its output (every restart appended) to tmp."""
    script = tmp / f"{name}.sbatch"
    script.write_text(
        f"""#!/bin/bash
#SBATCH --job-name={name}
#SBATCH --nodes=1
#SBATCH --ntasks-per-node={tasks}
#SBATCH --cpus-per-task={cpus}
#SBATCH --time=00:15:00
#SBATCH --requeue
#SBATCH --open-mode=append
#SBATCH --output={tmp}/{name}-%j.out
cd "$SLURM_SUBMIT_DIR"
echo "=== job $SLURM_JOB_ID start, restart count ${{SLURM_RESTART_COUNT:-0}}"
{body}
"""
    )
    return script


def submit(cluster: list, script: Path) -> str:
    proc = subprocess.run(
        ["sbatch", "--parsable", str(script)], capture_output=True, text=True, cwd=REPO, env=env(), timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    job = proc.stdout.strip().split(";")[0]
    cluster.append(job)
    print(f"\n[cluster] submitted {script.name} as job {job}")
    return job


def job_info(job: str) -> dict:
    """scontrol's fields of the job (JobState, Restarts, ExitCode, ...)."""
    out = slurm("scontrol", "show", "job", "-o", job, check=False)
    return dict(re.findall(r"(\w+)=(\S*)", out))


def wait_for(what: str, predicate, timeout: float = JOB_TIMEOUT_S, poll: float = 0.25):
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        assert time.monotonic() < deadline, f"timed out after {timeout:.0f} s waiting for {what}"
        time.sleep(poll)
    return value


def wait_done(job: str, output: Path) -> dict:
    info = wait_for(f"job {job} to end", lambda: (i := job_info(job)).get("JobState") in DONE_STATES and i)
    log = output.read_text() if output.is_file() else "(no output file)"
    assert info["JobState"] == "COMPLETED", f"job {job} ended {info['JobState']}:\n{log[-4000:]}"
    return info


def accounting(job: str) -> list[str]:
    """The job's accounting records: one per run of it (a requeued job has one per start). sacct reads
    slurmdbd where there is one, else (this cluster) the job completion log (sacct -c)."""
    fields = "JobID,JobName,State,Start,End,ExitCode"
    for args in (["-D"], ["-c"]):
        proc = subprocess.run(
            ["sacct", *args, "-j", job, "-n", "-P", f"--format={fields}"],
            capture_output=True,
            text=True,
            env=env(),
            timeout=60,
        )
        lines = [line for line in proc.stdout.splitlines() if line.split("|")[0] == job]
        if proc.returncode == 0 and lines:
            print(f"[cluster] sacct {' '.join(args)} -j {job} --format={fields}")
            for line in lines:
                print(f"[cluster]   {line}")
            return lines
    return []


def instances(output: Path) -> list[str]:
    """The job's output, one string per start (the script echoes a line at each)."""
    return re.split(r"^=== job \d+ start, restart count \d+$", output.read_text(), flags=re.M)[1:]


def trained_batches(text: str) -> list[str]:
    return [m.group(1) for m in BATCH_DONE.finditer(text)]


def without_rank(path: Path) -> bytes:
    """results.csv without its last column (rank): every other byte as written."""
    lines = path.read_bytes().splitlines(keepends=True)
    assert lines[0].rstrip(b"\r\n").endswith(b",rank")
    return b"".join(
        re.sub(rb",\d+(\r?\n)$", rb"\1", line) if i else line.replace(b",rank", b"")
        for i, line in enumerate(lines)
    )


def sweep_line(out: Path, prefix: str = "srun --kill-on-bad-exit=1") -> str:
    args = " ".join(f"'{a}'" if "[" in a else a for a in GRID)
    return f"{prefix} {PYTHON} -m grok_lightning.sweep {args} out_dir={out} world_size=2"


def test_sbatch_two_tasks_give_the_local_results(cluster, reference, tmp_path):
    out = tmp_path / "sweep"
    job = submit(cluster, job_script(tmp_path, "grok-sweep", sweep_line(out)))
    wait_done(job, tmp_path / f"grok-sweep-{job}.out")
    accounting(job)
    log = (tmp_path / f"grok-sweep-{job}.out").read_text()
    assert "2 process(es) (slurm)" in log, log[-3000:]
    trained = trained_batches(log)
    assert len(trained) == len(set(trained)) == N_BATCHES  # every batch trained once
    assert without_rank(out / "results.csv") == without_rank(reference)
    ranks = {line.rsplit(b",", 1)[1].strip() for line in (out / "results.csv").read_bytes().splitlines()[1:]}
    assert ranks <= {b"0", b"1"}


def test_requeued_sweep_trains_only_the_unfinished_batches(cluster, reference, tmp_path):
    out = tmp_path / "sweep"
    job = submit(cluster, job_script(tmp_path, "grok-sweep", sweep_line(out)))
    output = tmp_path / f"grok-sweep-{job}.out"
    batches, locks = out / "batches", out / "locks"

    def mid_batch():  # a batch finished, another one started and not finished
        done = {p.stem for p in batches.glob("*.json")} if batches.is_dir() else set()
        started = {p.stem for p in locks.glob("g*.lock")} if locks.is_dir() else set()
        return 0 < len(done) < N_BATCHES and started - done

    running = wait_for("a batch to finish and another to be under way", mid_batch, poll=0.1)
    slurm("scontrol", "requeue", job)
    print(f"[cluster] scontrol requeue {job}: batches under way {sorted(running)}")
    # the first start has ended (its processes got SIGTERM): the batch files it left are final
    wait_for(f"job {job} to be requeued", lambda: job_info(job).get("Restarts") == "1")
    wait_for(f"job {job}'s first start to end", lambda: job_info(job).get("JobState") == "PENDING")
    before = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in batches.glob("*.json")}
    assert 0 < len(before) < N_BATCHES, "the requeue came after every batch had finished"
    info = wait_done(job, output)
    assert info["Restarts"] == "1"
    records = accounting(job)
    assert not records or len(records) >= 2, records  # one record per start where sacct has any

    first, second = instances(output)
    print(f"[cluster] job {job}: first start trained {trained_batches(first)}")
    print(f"[cluster] job {job}: the restart trained {trained_batches(second)}")
    assert "DUE TO JOB REQUEUE" in first, first[-3000:]
    finished_first = {f"{b}.json" for b in trained_batches(first)}
    assert finished_first <= set(before)  # a batch whose line printed has its file
    again = set(trained_batches(second))
    # no batch trained to completion twice: the restart trains exactly the ones without a file
    assert {f"{b}.json" for b in again} == {p.name for p in batches.glob("*.json")} - set(before)
    assert len(trained_batches(second)) == len(again)
    for name, (data, mtime) in before.items():  # the earlier results were left as they were
        path = batches / name
        assert (path.read_bytes(), path.stat().st_mtime_ns) == (data, mtime), name
    assert without_rank(out / "results.csv") == without_rank(reference)


def test_requeued_training_run_resumes_to_the_same_metrics(cluster, tmp_path):
    ref_root = tmp_path / "reference"
    proc = subprocess.run(
        [sys.executable, "-m", "grok_lightning.train", *TRAIN, f"run_root={ref_root}"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=JOB_TIMEOUT_S,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    (ref_run,) = (ref_root / "parity").iterdir()

    root = tmp_path / "runs"
    # A requeued job keeps its id: its run directory is the newest under runs/slurm-<id>/parity, and
    # the restart resumes it from its last checkpoint (a start killed before any checkpoint: anew).
    body = f"""ROOT={root}/slurm-$SLURM_JOB_ID
run=$(ls -d "$ROOT"/parity/*/ 2>/dev/null | tail -n 1)
if [ -n "$run" ] && [ -f "$run/checkpoints/last.ckpt" ]; then
    srun {PYTHON} -m grok_lightning.train resume="$run"
else
    srun {PYTHON} -m grok_lightning.train {" ".join(TRAIN)} run_root="$ROOT"
fi"""
    job = submit(cluster, job_script(tmp_path, "grok-train", body, tasks=1))
    output = tmp_path / f"grok-train-{job}.out"
    parity = root / f"slurm-{job}" / "parity"

    def a_third_trained():
        for ckpt in parity.glob("*/checkpoints/step=*.ckpt"):
            if int(ckpt.stem.split("=")[1]) >= 1300 and not (ckpt.parents[1] / "summary.json").exists():
                return ckpt
        return None

    ckpt = wait_for("the run to pass step 1300", a_third_trained, poll=0.1)
    slurm("scontrol", "requeue", job)
    print(f"[cluster] scontrol requeue {job} at {ckpt.name}")
    info = wait_done(job, output)
    assert info["Restarts"] == "1"
    records = accounting(job)
    assert not records or len(records) >= 2, records  # one record per start where sacct has any
    first, second = instances(output)
    stopped = re.search(r"interrupted at step (\d+)", first)  # SIGTERM: a checkpoint at that step
    assert stopped and 1300 <= int(stopped.group(1)) < 4000, first[-3000:]
    assert "Restoring states from the checkpoint path" in second, second[-3000:]
    print(f"[cluster] job {job}: stopped at step {stopped.group(1)}, the restart resumed from there")
    (run,) = parity.iterdir()  # one run directory: the restart resumed it, it did not start anew
    summary = (run / "summary.json").read_text()
    assert '"status": "finished"' in summary and '"steps_trained": 4000' in summary, summary[:2000]
    assert (run / "metrics.csv").read_bytes() == (ref_run / "metrics.csv").read_bytes()


def test_fabric_run_two_cpu_processes_give_the_local_results(cluster, reference, tmp_path):
    out = tmp_path / "sweep"
    line = sweep_line(out).replace(
        f"srun --kill-on-bad-exit=1 {PYTHON} -m grok_lightning.sweep",
        f"srun {FABRIC} run --accelerator=cpu --devices=2 scripts/sweep.py",
    )
    job = submit(cluster, job_script(tmp_path, "grok-fabric", line, tasks=1, cpus=2))
    output = tmp_path / f"grok-fabric-{job}.out"
    wait_done(job, output)
    accounting(job)
    log = output.read_text()
    assert "2 process(es) (torchelastic)" in log, log[-3000:]
    assert without_rank(out / "results.csv") == without_rank(reference)
