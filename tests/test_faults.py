"""The fault matrix (issue 22): two writers, kill -9 and SIGTERM mid-write, flipped bytes, torn logs, full and
read-only disks. Each case asserts the exit code, exactly one error line and what is left on disk.

Faults are made for real where that is cheap (processes, signals, a small tmpfs) and injected where only timing
would otherwise decide (a subprocess whose shard writer pauses, so that SIGTERM lands mid-run).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from dkp_testing import tiny_overrides
from typer.testing import CliRunner

from dkp_tui.cli import app
from dkp_tui.config import load_config
from dkp_tui.formats.run_dir import load_weights, read_run_config, read_run_info
from dkp_tui.locks import LOCK_NAME, remove_dead_temps, writer_lock
from dkp_tui.train import loop

runner = CliRunner()
TESTS = Path(__file__).resolve().parent


def _sets(dataset: Path, **extra: object) -> list[str]:
    return [a for o in tiny_overrides(dataset, **extra) for a in ("--set", o)]


def _train(dataset: Path, run: Path, **extra: object) -> None:
    loop.train(load_config(None, tiny_overrides(dataset, **extra)), run, role="student", quiet=True)


def _error_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("dkp: error:")]


def _one_error(result, *needles: str) -> str:
    """Exit 2, exactly one error line and no traceback; returns the line."""
    assert result.exit_code == 2, result.output
    lines = _error_lines(result.output)
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _temps(folder: Path) -> list[Path]:
    return [p for p in folder.rglob(".*") if ".tmp" in p.name]


def _lines(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def finished_run(tiny_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-step student run (copied by the tests that change it)."""
    run = tmp_path_factory.mktemp("runs") / "done"
    _train(tiny_dataset, run, iterations=2)
    return run


def _copy_run(run: Path, dest: Path) -> Path:
    shutil.copytree(run, dest)
    return dest


def _script(body: str) -> list[str]:
    """A ``python -c`` command that runs ``body`` (set-up and patches) and then the dkp CLI with ``ARGV``."""
    prelude = f"import sys; sys.path.insert(0, {str(TESTS)!r})\n"
    return [sys.executable, "-c", prelude + textwrap.dedent(body)]


# -- 1. one writer at a time --------------------------------------------------------------------------------------


def test_second_train_on_a_locked_run_is_refused_and_writes_nothing(tiny_dataset: Path, tmp_path: Path):
    run = tmp_path / "run"
    with writer_lock(run, f"run {run}"):
        r = runner.invoke(app, ["train", *_sets(tiny_dataset), "--run", str(run), "--quiet"])
        line = _one_error(r, f"run {run} is being written by pid {os.getpid()}", "wait for it")
        assert sorted(p.name for p in run.iterdir()) == [LOCK_NAME], line
    assert not run.exists()  # the holder made the folder and wrote nothing else: gone with its lock


def test_second_resume_of_a_locked_run_is_refused_and_changes_nothing(finished_run: Path, tmp_path: Path):
    run = _copy_run(finished_run, tmp_path / "run")
    before = _snapshot(run)
    with writer_lock(run, f"run {run}"):
        r = runner.invoke(app, ["train", "--resume", str(run), "--iterations", "4", "--quiet"])
        _one_error(r, "is being written by pid", "(lock ")
    assert _snapshot(run) == before


def test_second_prepare_of_a_locked_folder_is_refused(tmp_path: Path):
    out = tmp_path / "ds"
    with writer_lock(out, f"data set {out}"):
        r = runner.invoke(app, ["prepare", "synthetic", "--out", str(out), "--n-train", "4", "--n-fit", "2",
                                "--n-test", "2", "--quiet"])
        _one_error(r, f"data set {out} is being written by pid {os.getpid()}")
        assert sorted(p.name for p in out.iterdir()) == [LOCK_NAME]


def test_second_depth_on_a_locked_data_set_is_refused(tiny_dataset: Path, tmp_path: Path):
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(tiny_dataset / "dataset.json", data / "dataset.json")
    (tmp_path / "maps").mkdir()
    with writer_lock(data / "depth", "depth"):
        r = runner.invoke(app, ["depth", str(data), "--import", str(tmp_path / "maps"), "--quiet"])
        _one_error(r, "is being written by pid")
        assert sorted(p.name for p in (data / "depth").iterdir()) == [LOCK_NAME]


def test_under_torchrun_only_rank_0_locks(tmp_path: Path, monkeypatch):
    run = tmp_path / "run"
    with writer_lock(run, "run"):
        monkeypatch.setenv("RANK", "1")  # another rank of the same job: it writes only what rank 0 coordinates
        with writer_lock(run, "run"):
            pass
        monkeypatch.setenv("RANK", "0")
        from dkp_tui.errors import DkpError

        with pytest.raises(DkpError, match="is being written by"), writer_lock(run, "run"):
            pass


def _together(commands: list[list[str]], go: Path, timeout: float = 300) -> list[subprocess.CompletedProcess]:
    """Start the commands, each waiting for ``go`` after its imports, then release them at the same moment."""
    procs = [subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for c in commands]
    ready = [go.with_name(f"ready{i}") for i in range(len(commands))]
    deadline = time.monotonic() + timeout
    while not all(r.exists() for r in ready) and time.monotonic() < deadline:
        assert all(p.poll() is None for p in procs), [p.communicate() for p in procs]
        time.sleep(0.05)
    go.touch()
    out = []
    for p, c in zip(procs, commands, strict=True):
        stdout, stderr = p.communicate(timeout=timeout)
        out.append(subprocess.CompletedProcess(c, p.returncode, stdout, stderr))
    return out


def _waiting_cli(go: Path, index: int, argv: list[str], preload: str = "") -> list[str]:
    return _script(f"""
        import time
        from pathlib import Path
        {preload}
        from dkp_tui.cli import main
        Path({str(go.with_name(f"ready{index}"))!r}).touch()
        while not Path({str(go)!r}).exists():
            time.sleep(0.005)
        sys.argv = ["dkp", *{argv!r}]
        main()
    """)


def _one_winner(results: list[subprocess.CompletedProcess]) -> subprocess.CompletedProcess:
    codes = sorted(r.returncode for r in results)
    assert codes == [0, 2], [(r.returncode, r.stderr[-2000:]) for r in results]
    loser = next(r for r in results if r.returncode == 2)
    lines = loser.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("dkp: error:") and "is being written by pid" in lines[0], lines
    return next(r for r in results if r.returncode == 0)


def test_two_prepares_started_together_one_wins(tmp_path: Path):
    out = tmp_path / "ds"
    argv = ["prepare", "synthetic", "--out", str(out), "--n-train", "300", "--n-fit", "8", "--n-test", "8",
            "--workers", "1", "--quiet"]
    go = tmp_path / "go"
    _one_winner(_together([_waiting_cli(go, i, argv) for i in range(2)], go))
    from dkp_tui.formats.dataset_dir import read_manifest

    assert read_manifest(out).splits["train"].count == 300
    assert not _temps(out) and not (out / LOCK_NAME).exists()


# (delay of writer 0, delay of writer 1) after the common start; the first holds the lock within milliseconds and for
# a second or more (a model is built, steps run), so the later one always meets the lock
ORDERS = {"race": (0.0, 0.0), "first-then-second": (0.0, 0.1), "second-then-first": (0.1, 0.0)}


def _threads_together(fn, delays: tuple[float, ...]) -> list[BaseException | None]:
    """``fn()`` in one thread per delay, released by one barrier, each after its delay; what each raised (None:
    returned). flock excludes two open file descriptions of one process as it excludes two processes, so threads
    stand in for processes here, where a process start (torch's import) would cost more than the whole case."""
    import threading

    n = len(delays)
    barrier, outcome = threading.Barrier(n), [None] * n

    def run(i: int) -> None:
        barrier.wait()
        time.sleep(delays[i])
        try:
            fn()
        except BaseException as err:  # noqa: BLE001 - reported to the test
            outcome[i] = err

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    return outcome


def _one_refused(outcome: list[BaseException | None], delays: tuple[float, ...]) -> None:
    """Exactly one writer refused, in one line naming the holder; when one started later, that one."""
    from dkp_tui.errors import DkpError

    refused = [i for i, e in enumerate(outcome) if e is not None]
    assert len(refused) == 1 and isinstance(outcome[refused[0]], DkpError), outcome
    message = str(outcome[refused[0]])
    assert "is being written by pid" in message and "\n" not in message
    if len(set(delays)) > 1:
        assert delays[refused[0]] == max(delays), "the writer that started second must be the one refused"


@pytest.mark.parametrize("order", ORDERS)
def test_two_trains_started_together_one_wins(tiny_dataset: Path, tmp_path: Path, order: str):
    run = tmp_path / "run"
    _one_refused(_threads_together(lambda: _train(tiny_dataset, run, iterations=2), ORDERS[order]), ORDERS[order])
    lines = _lines(run)
    assert [r["kind"] for r in lines].count("start") == 1
    assert [r["step"] for r in lines if r["kind"] == "step"] == [1, 2]
    assert read_run_info(run).status == "finished" and not (run / LOCK_NAME).exists()


@pytest.mark.parametrize("order", ORDERS)
def test_two_resumes_started_together_one_wins(finished_run: Path, tmp_path: Path, order: str):
    run = _copy_run(finished_run, tmp_path / "run")
    cfg = read_run_config(run)
    cfg.train.iterations = 8

    def resume() -> None:
        loop.train(cfg, run, role="student", resume=True, quiet=True)

    _one_refused(_threads_together(resume, ORDERS[order]), ORDERS[order])
    steps = [r["step"] for r in _lines(run) if r["kind"] == "step"]
    assert steps == list(range(1, 9)) and read_run_info(run).step == 8  # no step twice, none lost


def test_two_depth_imports_started_together_one_wins(tiny_dataset: Path, tmp_path: Path):
    data, maps = _data_and_maps(tiny_dataset, tmp_path)
    argv = ["depth", str(data), "--import", str(maps), "--shard-size", "16", "--quiet"]
    go = tmp_path / "go"
    _one_winner(_together([_waiting_cli(go, i, argv) for i in range(2)], go))
    from dkp_tui.formats.depth_cache import open_depth

    assert len(open_depth(data, "train", "imported")) == 48 and not (data / "depth" / LOCK_NAME).exists()


# -- kill -9 during a checkpoint write, SIGTERM of prepare and depth -----------------------------------------------


@pytest.fixture
def one_thread():
    """Bit-identity across processes needs the same thread count in each (reductions split differently); the
    config's train.threads sets it, and this restores the test process's own afterwards."""
    threads = torch.get_num_threads()
    yield {"train__threads": 1}
    torch.set_num_threads(threads)


def test_kill9_during_a_checkpoint_write_then_resume_is_bit_identical(tiny_dataset: Path, tmp_path: Path,
                                                                      one_thread: dict):
    _train(tiny_dataset, tmp_path / "full", iterations=4, **one_thread)
    run = tmp_path / "cut"
    argv = ["train", *_sets(tiny_dataset, iterations=4, **one_thread), "--run", str(run), "--quiet"]
    # the tensors of the step-4 checkpoint are written to their temporary file, then the process is killed
    proc = subprocess.run(_script(f"""
        import os, signal
        import safetensors.torch as st
        real = st.save_file
        def save_file(tensors, filename, metadata=None):
            real(tensors, filename, metadata=metadata)
            if ".state-0000004.safetensors." in filename:
                os.kill(os.getpid(), signal.SIGKILL)
        st.save_file = save_file
        from dkp_tui.cli import main
        sys.argv = ["dkp", *{argv!r}]
        main()
    """), capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert [p.name for p in _temps(run / "checkpoint")], "the kill did not land in the checkpoint write"
    assert json.loads((run / "checkpoint" / "state.json").read_text())["step"] == 2

    r = runner.invoke(app, ["train", "--resume", str(run), "--quiet"])
    assert r.exit_code == 0, r.output
    assert not _temps(run) and not (run / LOCK_NAME).exists()
    a, _ = load_weights(tmp_path / "full" / "model.safetensors")
    b, meta = load_weights(run / "model.safetensors")
    assert meta["step"] == "4" and all(torch.equal(a[k], b[k]) for k in a), "resume is not bit-identical"
    assert [x["step"] for x in _lines(run) if x["kind"] == "step"] == [1, 2, 3, 4]


def _terminate_when(proc: subprocess.Popen, marker: str, timeout: float = 240) -> tuple[str, str]:
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    for line in proc.stdout:  # the child prints the marker once it is mid-run
        if marker in line or time.monotonic() > deadline:
            break
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    return out, err


def test_sigterm_of_prepare_then_rerun(tmp_path: Path):
    out = tmp_path / "ds"
    argv = ["prepare", "synthetic", "--out", str(out), "--n-train", "8", "--n-fit", "4", "--n-test", "4",
            "--workers", "1", "--quiet"]
    proc = subprocess.Popen(_script(f"""
        import time
        from dkp_tui.data import synthetic
        real = synthetic._write_split
        def slow(root, split, arrays):
            facts = real(root, split, arrays)
            print("WROTE", split, flush=True)
            time.sleep(60)
            return facts
        synthetic._write_split = slow
        from dkp_tui.cli import main
        sys.argv = ["dkp", *{argv!r}]
        main()
    """), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _, err = _terminate_when(proc, "WROTE")
    assert proc.returncode == 143 and err.strip().splitlines() == ["dkp: terminated"], err
    assert not (out / "dataset.json").exists() and not _temps(out)  # unfinished: never looks like a data set
    r = runner.invoke(app, ["prepare", "synthetic", *argv[2:]])
    assert r.exit_code == 0, r.output
    from dkp_tui.formats.dataset_dir import read_manifest

    assert read_manifest(out).splits["train"].count == 8 and not (out / LOCK_NAME).exists()


def _data_and_maps(tiny_dataset: Path, tmp_path: Path) -> tuple[Path, Path]:
    """A copy of the tiny data set without depth, and a folder of depth maps for `dkp depth --import`."""
    from dkp_tui.formats.dataset_dir import read_manifest

    data, maps = tmp_path / "data", tmp_path / "maps"
    shutil.copytree(tiny_dataset, data, ignore=shutil.ignore_patterns("depth"))
    for split, info in read_manifest(data).splits.items():
        if info.same_as:
            continue
        (maps / split).mkdir(parents=True)
        for i in range(info.count):
            np.save(maps / split / f"{i:06d}.npy", np.random.default_rng(i).random((64, 64), dtype=np.float32))
    return data, maps


def test_sigterm_of_depth_then_rerun(tiny_dataset: Path, tmp_path: Path):
    data, maps = _data_and_maps(tiny_dataset, tmp_path)
    argv = ["depth", str(data), "--import", str(maps), "--shard-size", "16", "--quiet"]
    proc = subprocess.Popen(_script(f"""
        import time
        from dkp_tui.formats import depth_cache
        real = depth_cache.write_shard
        def slow(*args, **kwargs):
            real(*args, **kwargs)
            print("SHARD", flush=True)
            time.sleep(60)
        depth_cache.write_shard = slow
        from dkp_tui.cli import main
        sys.argv = ["dkp", *{argv!r}]
        main()
    """), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _, err = _terminate_when(proc, "SHARD")
    assert proc.returncode == 143 and err.strip().splitlines() == ["dkp: terminated"], err
    tag = data / "depth" / "imported"
    assert not (tag / "manifest.json").exists() and len(list(tag.rglob("shard-*.npy"))) == 1 and not _temps(tag)
    r = runner.invoke(app, ["depth", *argv[1:], "--json"])
    assert r.exit_code == 0, r.output
    result = json.loads(r.stdout)
    assert result["skipped"] == 16 and (tag / "manifest.json").is_file() and not (data / "depth" / LOCK_NAME).exists()


# -- damaged tensors ----------------------------------------------------------------------------------------------


def _flip(path: Path, back: int = 9) -> None:
    """Flip one byte in the data (the end of the file: tensor bytes, not the header)."""
    data = bytearray(path.read_bytes())
    data[-back] ^= 0x5A
    path.write_bytes(bytes(data))


def test_flipped_byte_in_weights_is_refused(finished_run: Path, tmp_path: Path):
    run = _copy_run(finished_run, tmp_path / "run")
    _flip(run / "model.safetensors")
    r = runner.invoke(app, ["eval", str(run)])
    _one_error(r, f"{run / 'model.safetensors'}: damaged: hash mismatch")


def test_flipped_byte_in_checkpoint_tensors_is_refused(finished_run: Path, tmp_path: Path):
    run = _copy_run(finished_run, tmp_path / "run")
    (tensors,) = (run / "checkpoint").glob("state-*.safetensors")
    _flip(tensors)
    before = _snapshot(run)
    r = runner.invoke(app, ["train", "--resume", str(run), "--iterations", "4", "--quiet"])
    _one_error(r, f"{tensors}: damaged: hash mismatch")
    assert _snapshot(run) == before


def test_flipped_byte_in_a_depth_shard_is_refused(tiny_dataset: Path, tmp_path: Path):
    data = tmp_path / "data"
    shutil.copytree(tiny_dataset, data)
    shard = data / "depth" / "exact" / "train" / "shard-00000.npy"
    _flip(shard, back=100)
    r = runner.invoke(app, ["train", "--teacher", "depth", *_sets(data, iterations=2), "--run",
                            str(tmp_path / "t"), "--quiet"])
    _one_error(r, f"{shard}: damaged: hash mismatch")
    assert not (tmp_path / "t").exists()


def test_a_damaged_header_that_still_parses_is_refused(finished_run: Path, tmp_path: Path):
    path = tmp_path / "model.safetensors"
    data = bytearray((finished_run / "model.safetensors").read_bytes())
    n = int.from_bytes(data[:8], "little")
    header = data[8:8 + n].replace(b'"dtype":"F32"', b'"dtype":"I32"', 1)  # same length: still a valid file
    assert header != data[8:8 + n]
    path.write_bytes(bytes(data[:8] + header + data[8 + n:]))
    from dkp_tui.errors import DkpError

    with pytest.raises(DkpError, match="damaged: hash mismatch"):
        load_weights(path)


def test_files_written_before_hashes_still_load(finished_run: Path, tmp_path: Path):
    from safetensors.torch import load_file, save_file

    old = tmp_path / "old.safetensors"
    tensors = load_file(str(finished_run / "model.safetensors"))
    from safetensors import safe_open

    with safe_open(str(finished_run / "model.safetensors"), framework="pt") as f:
        meta = {k: v for k, v in (f.metadata() or {}).items() if k != "dkp_xxh3"}
    save_file(tensors, str(old), metadata=meta)
    loaded, _ = load_weights(old)
    assert all(torch.equal(loaded[k], tensors[k]) for k in tensors)


# -- torn and undecodable metrics ---------------------------------------------------------------------------------


def test_non_utf8_metrics_tail_is_dropped_by_resume_watch_and_export(finished_run: Path, tmp_path: Path):
    run = _copy_run(finished_run, tmp_path / "run")
    with open(run / "metrics.jsonl", "ab") as fh:
        fh.write(b'{"kind": "step", "step": 3, "loss": 0.\xff\xfe\x00\n\x9c{"kind": "st')
    from dkp_tui.watch.tail import JsonlTailer

    tailer = JsonlTailer(run / "metrics.jsonl")
    tailer.poll()
    assert tailer.corrupt == 1 and tailer.lines == len(_good_lines(run))

    pytest.importorskip("tensorboard", reason="export-metrics needs the tensorboard extra")
    from dkp_tui.train.tensorboard import convert_run

    assert convert_run(run, tmp_path / "tb")["skipped_lines"] == 2

    r = runner.invoke(app, ["train", "--resume", str(run), "--iterations", "4"])
    assert r.exit_code == 0 and "dropped 2 torn or undecodable" in r.output, r.output
    assert [x["step"] for x in _lines(run) if x["kind"] == "step"] == [1, 2, 3, 4]


def _good_lines(run: Path) -> list[bytes]:
    return [line for line in (run / "metrics.jsonl").read_bytes().split(b"\n")[:-2] if line.strip()]


# -- full and read-only disks -------------------------------------------------------------------------------------


@pytest.fixture
def small_fs(tmp_path: Path):
    """A tmpfs of ``size`` bytes (call it), unmounted afterwards; skipped where this process cannot mount."""
    mounts: list[Path] = []

    def make(size: str, name: str = "small") -> Path:
        if os.geteuid() != 0:
            pytest.skip("mounting a small tmpfs needs root (CAP_SYS_ADMIN)")
        point = tmp_path / name
        point.mkdir()
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(point)],
                           capture_output=True, text=True)
        if r.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip() or r.returncode}")
        mounts.append(point)
        return point

    yield make
    for point in mounts:
        subprocess.run(["umount", "-l", str(point)], check=False)


def _read_only(point: Path) -> None:
    r = subprocess.run(["mount", "-o", "remount,ro", str(point)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot remount read-only: {r.stderr.strip()}")


def test_enospc_in_prepare(small_fs):
    out = small_fs("1m") / "ds"
    r = runner.invoke(app, ["prepare", "synthetic", "--out", str(out), "--n-train", "200", "--n-fit", "8",
                            "--n-test", "8", "--workers", "1", "--quiet"])
    _one_error(r, "No space left on device (ENOSPC)")
    assert not (out / "dataset.json").exists() and not _temps(out.parent)


def test_enospc_in_train_keeps_the_last_checkpoint(tiny_dataset: Path, small_fs):
    run = small_fs("9m") / "run"  # room for the weights (1.7 MB) and one checkpoint (5 MB), not two checkpoints
    r = runner.invoke(app, ["train", *_sets(tiny_dataset, iterations=2, train__checkpoint_every=1), "--run",
                            str(run), "--quiet"])
    line = _one_error(r, "No space left on device (ENOSPC)", "kept: the checkpoint of step 1",
                      f"dkp train --resume {run}")
    info = read_run_info(run)
    assert info.status == "failed" and str(info.step) in line and not _temps(run)
    load_weights(run / "model.safetensors")  # what was kept is whole


def test_erofs_in_prepare_and_a_new_train(tiny_dataset: Path, small_fs):
    point = small_fs("1m")
    _read_only(point)
    r = runner.invoke(app, ["prepare", "synthetic", "--out", str(point / "ds"), "--n-train", "4", "--n-fit", "2",
                            "--n-test", "2", "--quiet"])
    _one_error(r, str(point / "ds"), "Read-only file system (EROFS)")
    r = runner.invoke(app, ["train", *_sets(tiny_dataset), "--run", str(point / "run"), "--quiet"])
    _one_error(r, str(point / "run"), "Read-only file system (EROFS)")
    assert not any(point.iterdir())


# -- the smaller items --------------------------------------------------------------------------------------------


def test_dead_writers_temp_files_are_removed_but_a_readers_are_kept(tmp_path: Path):
    run = tmp_path / "run"
    (run / "checkpoint").mkdir(parents=True)
    dead = [run / ".model.safetensors.a1b2c3d4.tmp.safetensors", run / "checkpoint" / ".state.json.zz_9x8y7.tmp.json"]
    live = run / ".eval.json.k3j4h5g6.tmp.json"  # `dkp eval` writes eval.json while a run trains
    for p in [*dead, live]:
        p.write_bytes(b"partial")
    (run / "notes.tmp").write_text("mine")
    with writer_lock(run, "run", keep=frozenset({"eval.json"})):
        pass
    assert not any(p.exists() for p in dead) and live.exists() and (run / "notes.tmp").exists()
    assert remove_dead_temps(run) == [live]


def test_a_refused_foreign_folder_keeps_its_temp_looking_files(tmp_path: Path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("not a data set")
    theirs = out / ".draft.q1w2e3r4.tmp"  # another program's name that happens to match dkp's pattern
    theirs.write_text("keep me")
    r = runner.invoke(app, ["prepare", "synthetic", "--out", str(out), "--n-train", "4", "--n-fit", "2",
                            "--n-test", "2", "--quiet"])
    _one_error(r, "is not empty and is not a dkp data set")
    assert sorted(p.name for p in out.iterdir()) == [theirs.name, "notes.txt"]


def test_interruption_names_the_last_completed_step(tiny_dataset: Path, tmp_path: Path, monkeypatch):
    real_step, calls = loop.train_step, {"n": 0}

    def crashing_step(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 4:  # steps 1-3 done, the checkpoint of step 2 written
            raise KeyboardInterrupt
        return real_step(*args, **kwargs)

    monkeypatch.setattr(loop, "train_step", crashing_step)
    with pytest.raises(KeyboardInterrupt):
        _train(tiny_dataset, tmp_path / "cut", iterations=6)
    info = read_run_info(tmp_path / "cut")
    assert "interrupted after step 3 (last checkpoint: step 2)" in info.message and info.step == 2


def test_weights_have_the_mode_of_every_other_file(finished_run: Path):
    mask = os.umask(0)
    os.umask(mask)
    for name in ("model.safetensors", "run.json", "metrics.jsonl"):
        assert stat.S_IMODE((finished_run / name).stat().st_mode) == 0o666 & ~mask, name
    (tensors,) = (finished_run / "checkpoint").glob("state-*.safetensors")
    assert stat.S_IMODE(tensors.stat().st_mode) == 0o666 & ~mask


def test_watch_shows_a_deleted_or_replaced_run_as_gone_at_the_next_poll(finished_run: Path, tmp_path: Path):
    from dkp_tui.watch.state import RunModel

    run = _copy_run(finished_run, tmp_path / "run")
    model = RunModel(run, "run")
    model.poll()
    assert model.status(time.time()) == "finished"
    shutil.rmtree(run)
    model.poll()
    assert model.status(time.time()) == "gone" and model.step == 0
    run.mkdir()  # another run under the same name, still running
    (run / "run.json").write_text(json.dumps({"format_version": 1, "role": "teacher", "status": "running",
                                              "step": 0, "total_steps": 9, "created": time.time()}))
    model.poll()
    assert model.status(time.time()) == "running" and model.role == "teacher" and model.total == 9
    shutil.rmtree(run)
    _copy_run(finished_run, run)  # replaced between two polls: a new folder
    model.poll()
    assert model.status(time.time()) == "finished" and model.role == "student"
