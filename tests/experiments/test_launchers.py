"""Job-list launchers (issue 32): sequential, local worker processes and Slurm give the same runs and summary;
failures are reported with their logs and do not stop the other jobs; a second launch of a job list is refused;
`dkp watch` shows queued jobs; a job killed halfway on a real (test) Slurm cluster resumes from its checkpoint."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from dkp_testing import tiny_overrides

from dkp_tui.config import LaunchConfig
from dkp_tui.errors import DkpError
from dkp_tui.experiments import repeats
from dkp_tui.experiments.launchers import LaunchOptions, job_list_lock, launch_options, local
from dkp_tui.formats.job_list import JOB_LIST, JobEntry, JobList, read_job_list, write_job_list
from dkp_tui.formats.run_dir import CKPT_DIR, METRICS, WEIGHTS, read_run_info

PRESET = "synthetic-cpu"
RUN_NAMES = ("seed0/teacher", "seed0/student", "seed0/student-only",
             "seed1/teacher", "seed1/student", "seed1/student-only")


def overrides(dataset: Path) -> list[str]:
    # 8 steps with a checkpoint every 2, one torch thread in every process: the weights cannot depend on where a
    # job ran, and a job stopped after its first checkpoint has steps left to resume. The student on the
    # from-scratch detector: where a job runs does not depend on the backbone, and each job process then skips
    # building the ImageNet encoder
    return [*tiny_overrides(dataset, iterations=8, kd__gamma=0.5), "train.threads=1", 'model.backbone="autolink"']


def comparable(summary: dict[str, Any], out: Path) -> dict[str, Any]:
    """The summary with its own folder's name taken out of the run paths (each launcher writes elsewhere)."""
    text = json.dumps({k: v for k, v in summary.items() if k not in ("out", "figures")}, sort_keys=True)
    return json.loads(text.replace(str(out), "OUT"))


def tensor_hashes(run: Path) -> dict[str, str]:
    """Every tensor's XXH3 from the weights file (the bytes of the file also hold an unordered metadata map)."""
    from safetensors import safe_open

    with safe_open(str(run / WEIGHTS), "pt") as fh:
        return json.loads(fh.metadata()["dkp_xxh3"])


@pytest.fixture(scope="module")
def sequential(tiny_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """`--runs 2 --compare` in this process, one job after another (the default launcher): the reference runs
    and summary."""
    out = tmp_path_factory.mktemp("sequential") / "eval"
    return out, repeats.run_repeats(PRESET, 2, True, out, overrides(tiny_dataset), progress=False)


# -- options, the job list file, the dashboard, the lock (no training) --------------------------------------------


def test_flags_override_the_config_and_misplaced_flags_are_refused():
    cfg = LaunchConfig(launcher="slurm", partition="gpu", time_limit=300, sbatch="qos=high;constraint=a100")
    opts = launch_options(cfg, partition="debug", sbatch=["--mail-type=END"])
    assert opts.launcher == "slurm" and opts.slurm.partition == "debug" and opts.slurm.time_limit == 300
    assert opts.slurm.sbatch == {"qos": "high", "constraint": "a100", "mail_type": "END"}
    opts = launch_options(LaunchConfig(), launcher="local", devices="0,1,2,3")
    assert opts.devices == ["0", "1", "2", "3"] and local.worker_slots(opts.workers, opts.devices) == ["0", "1", "2", "3"]
    assert local.worker_slots(3, ["0"]) == ["0", "0", "0"] and local.worker_slots(2, []) == [None, None]
    for bad in ({"launcher": "pbs"}, {"launcher": "local", "devices": "gpu0"}, {"workers": 2},
                {"launcher": "local", "partition": "gpu"}, {"launcher": "slurm", "sbatch": ["qos"]}):
        with pytest.raises(DkpError):
            launch_options(LaunchConfig(), **bad)


def test_the_job_list_file_and_watch_show_queued_and_failed_jobs(tmp_path: Path):
    from dkp_tui.watch.once import snapshot_dict

    write_job_list(tmp_path, JobList("slurm", [
        JobEntry("seed0/teacher", "seed 0 teacher", "teacher", state="queued", launcher="slurm", job_id="7_0",
                 log="slurm/7_0/7_0_0_log.err"),
        JobEntry("seed0/student", "seed 0 distilled", "student", "seed0/teacher", state="failed",
                 message="its teacher teacher failed")]))
    back = read_job_list(tmp_path)
    assert back is not None and back.launcher == "slurm" and back.entry("seed0/teacher").job_id == "7_0"
    snap = snapshot_dict(tmp_path)
    assert {r["name"]: (r["status"], r["role"]) for r in snap["runs"]} == {
        "seed0/teacher": ("queued", "teacher"), "seed0/student": ("failed", "student")}
    assert snap["runs"][1]["job"]["log"] == "slurm/7_0/7_0_0_log.err"
    (tmp_path / JOB_LIST).write_text("{torn", encoding="utf-8")
    assert read_job_list(tmp_path) is None and snapshot_dict(tmp_path)["runs"] == []  # a reader never fails on it


def test_a_second_launch_of_the_same_job_list_is_refused(tmp_path: Path):
    out = tmp_path / "eval"
    with job_list_lock(out), pytest.raises(DkpError, match=r"job list .*eval is being written by pid \d+"):
        repeats.run_repeats(PRESET, 1, False, out, ['data.dataset="unused"'], progress=False)


def test_a_failed_local_job_is_reported_with_its_log_and_the_others_go_on(tmp_path: Path, monkeypatch):
    """The scheduler alone, with a stand-in worker (no torch): seed 0's teacher fails, so its student is never
    started; seed 1 runs to the end; the launch ends in one DkpError naming the failures."""
    fake = tmp_path / "fake_worker.py"
    fake.write_text("import json, sys\nspec = json.load(open(sys.argv[1]))\nprint('working on', spec['run'])\n"
                    "if spec['run'].endswith('seed0/teacher'):\n    print('dkp: error: boom', file=sys.stderr)\n"
                    "    sys.exit(2)\n", encoding="utf-8")
    monkeypatch.setattr(local, "WORKER", (str(fake),))
    out = tmp_path / "eval"
    notes: list[str] = []
    with pytest.raises(DkpError, match="2 of 4 jobs failed") as err:
        repeats.run_repeats(PRESET, 2, False, out, ['data.dataset="unused"'], progress=False,
                            launch=LaunchOptions("local", workers=2), note=notes.append)
    assert err.value.exit_code == 1
    states = {e.run: (e.state, e.message) for e in read_job_list(out).jobs}
    assert states["seed0/teacher"] == ("failed", "exit 2: dkp: error: boom")
    assert states["seed0/student"] == ("failed", "its teacher teacher failed")
    assert states["seed1/teacher"][0] == states["seed1/student"][0] == "finished"
    assert any("seed 0 teacher: failed" in n and "logs/seed0-teacher.log" in n for n in notes)
    assert "working on" in (out / "logs" / "seed0-teacher.log").read_text()
    assert not (out / "logs" / "seed0-student.log").exists()  # a student of a failed teacher never starts


# -- real trainings -------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_two_local_workers_give_the_sequential_runs_and_summary(sequential: tuple[Path, dict[str, Any]],
                                                                tiny_dataset: Path, tmp_path: Path):
    sequential_out = sequential[0]
    out = tmp_path / "eval"
    summary = repeats.run_repeats(PRESET, 1, True, out, overrides(tiny_dataset), progress=False,
                                  launch=LaunchOptions("local", workers=2))
    reference = repeats.run_repeats(PRESET, 1, True, sequential_out, overrides(tiny_dataset), progress=False,
                                    launch=LaunchOptions(collect=True))  # seed 0 of the reference, nothing trained
    assert comparable(summary, out) == comparable(reference, sequential_out)
    for name in RUN_NAMES[:3]:
        assert tensor_hashes(out / name) == tensor_hashes(sequential_out / name), name
    assert {e.state for e in read_job_list(out).jobs} == {"finished"}
    assert {e.state for e in read_job_list(sequential_out).jobs} == {"finished"}  # the sequential launch's too
    assert "worker" in (out / "logs" / "seed0-teacher.log").read_text()


def _wait(ok, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not ok():
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {seconds:.0f} s for {what}")
        time.sleep(0.02)


def _checkpointed(run: Path) -> bool:
    try:
        return any('"checkpoint"' in line for line in (run / METRICS).read_text().splitlines())
    except OSError:
        return False


@pytest.mark.slow
def test_slurm_end_to_end_with_a_killed_job_resubmitted(slurm_cluster, sequential: tuple[Path, dict[str, Any]],
                                                       tiny_dataset: Path, tmp_path: Path):
    sequential_out, reference = sequential
    out = tmp_path / "eval"
    sets = [a for kv in overrides(tiny_dataset) for a in ("--set", kv)]
    args = [sys.executable, "-m", "dkp_tui", "eval", "--runs", "2", "--compare", "--preset", PRESET, "--out",
            str(out), "--launcher", "slurm", "--cpus-per-job", "1", "--json", "--quiet", *sets]
    env = {**os.environ, **slurm_cluster.env}
    first = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait(lambda: (out / JOB_LIST).is_file(), 60, "the job list")
        second = subprocess.run(args, env=env, capture_output=True, text=True, timeout=60)
        assert second.returncode == 2
        assert f"dkp: error: job list {out} is being written by pid {first.pid}" in second.stderr

        # stop seed 1's distilled student after its first checkpoint, then cancel its Slurm job
        victim = out / "seed1" / "student"
        _wait(lambda: _checkpointed(victim), 120, "seed 1's student to checkpoint")
        os.kill(int((victim / ".dkp.lock").read_text().split()[0]), signal.SIGSTOP)
        job_id = read_job_list(out).entry("seed1/student").job_id
        slurm_cluster.run("scancel", job_id)
        _, err = first.communicate(timeout=180)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 1, err
    assert "1 of 6 jobs failed (seed 1 distilled" in " ".join(err.split())
    entries = {e.run: e for e in read_job_list(out).jobs}
    assert entries["seed1/student"].state == "failed" and entries["seed1/student"].log.startswith("slurm/")
    assert all(entries[name].state == "finished" for name in RUN_NAMES if name != "seed1/student")
    stopped = read_run_info(victim)
    assert stopped.status != "finished" and 2 <= stopped.step < 8 and (victim / CKPT_DIR).is_dir()
    assert not (out / "summary.json").exists()  # written once every job has finished
    weights = {name: (out / name / WEIGHTS).stat().st_mtime_ns for name in RUN_NAMES if name != "seed1/student"}

    third = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)
    assert third.returncode == 0, third.stderr
    summary = json.loads(third.stdout)
    entries = {e.run: e for e in read_job_list(out).jobs}
    assert [n for n in RUN_NAMES if entries[n].message != "reused"] == ["seed1/student"]  # only it resubmitted
    assert {n: (out / n / WEIGHTS).stat().st_mtime_ns for n in weights} == weights
    lines = [json.loads(line) for line in (victim / METRICS).read_text().splitlines()]
    assert [r["step"] for r in lines if r["kind"] == "end"] == [stopped.step, 8]  # stopped, then finished
    assert [r["step"] for r in lines if r["kind"] == "step"] == list(range(1, 9))  # resumed, not started over
    assert comparable(summary, out) == comparable(reference, sequential_out)
    for name in RUN_NAMES:
        assert tensor_hashes(out / name) == tensor_hashes(sequential_out / name), name


def test_sbatch_refusing_the_jobs_is_one_line(tmp_path: Path, monkeypatch):
    """A cluster that refuses the submission (here a stand-in sbatch: unknown partition) ends the launch with one
    DkpError quoting sbatch, never a traceback, and nothing is left recorded as submitted."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, body in (("sbatch", "echo 'sbatch: error: invalid partition specified: gpu' >&2; exit 1"),
                       ("squeue", "exit 0"), ("srun", "exit 0")):
        (bin_dir / name).write_text(f"#!/bin/sh\n{body}\n", encoding="utf-8")
        (bin_dir / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    out = tmp_path / "eval"
    opts = launch_options(LaunchConfig(), launcher="slurm", partition="gpu")
    with pytest.raises(DkpError, match="sbatch failed: sbatch: error: invalid partition specified: gpu"):
        repeats.run_repeats(PRESET, 1, False, out, ['data.dataset="unused"'], progress=False, launch=opts)
    assert {e.state for e in read_job_list(out).jobs} == {"queued"} and not any(e.job_id for e in read_job_list(out).jobs)


def test_slurm_jobs_of_an_earlier_launch_are_followed_not_submitted_again(tmp_path: Path, monkeypatch):
    """A launch that finds seed 0's teacher still running as Slurm job 7_0 (jobs.json of a launch that was stopped)
    follows that job, submits only the student, with afterok on 7_0, and takes each outcome from its result file.
    Stand-ins for sbatch and squeue (no cluster, no training): squeue shows 7_0 running, then nothing."""
    import pickle

    from dkp_tui.experiments import jobs

    out = tmp_path / "eval"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "squeue-calls"
    scripts = {
        "sbatch": f"cat \"$1\" > {tmp_path}/submitted.sh; echo 'Submitted batch job 8'",
        "squeue": f"echo x >> {calls}; n=$(wc -l < {calls}); if [ \"$n\" -le 2 ]; then echo '7_0|RUNNING|None'; fi",
        "srun": "exit 0",
    }
    for name, body in scripts.items():
        (bin_dir / name).write_text(f"#!/bin/sh\n{body}\n", encoding="utf-8")
        (bin_dir / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr(jobs, "evaluate_job", lambda job, device, batch_size=64, progress=None: {
        "run": str(job.run), "value": 1.0 if job.role == "teacher" else 2.0, "input": "rgb", "extras": {}})
    for job_id in ("7_0", "8"):  # what the two jobs leave when they succeed
        (out / "slurm" / job_id).mkdir(parents=True)
        with open(out / "slurm" / job_id / f"{job_id}_0_result.pkl", "wb") as fh:
            pickle.dump(("success", {"what": "trained", "seconds": 1.0}), fh)
    write_job_list(out, JobList("slurm", [JobEntry("seed0/teacher", "seed 0 teacher", "teacher", state="running",
                                                   launcher="slurm", job_id="7_0",
                                                   log="slurm/7_0/7_0_0_log.err")]))
    opts = launch_options(LaunchConfig(), launcher="slurm")
    opts.slurm.poll_s = 0.01
    notes: list[str] = []
    summary = repeats.run_repeats(PRESET, 1, False, out, ['data.dataset="unused"'], progress=False, launch=opts,
                                  note=notes.append)
    assert "#SBATCH --dependency=afterok:7_0" in (tmp_path / "submitted.sh").read_text()
    assert "submitted 1 Slurm job(s), following 1 of an earlier launch" in " ".join(notes)
    entries = {e.run: e for e in read_job_list(out).jobs}
    assert (entries["seed0/teacher"].job_id, entries["seed0/teacher"].state) == ("7_0", "finished")
    assert (entries["seed0/student"].job_id, entries["seed0/student"].state) == ("8", "finished")
    assert [r["values"] for r in summary["rows"]] == [[1.0], [2.0]]
