"""A single-node Slurm cluster on localhost for the tests: munged with a generated key, slurmctld and slurmd with a
config in a temporary folder (no /etc, no systemd, no cgroups), on free ports.

Needs root (slurmd runs jobs as their user and must be able to) and the Debian packages `slurm-wlm` and `munge`.
`why_not()` says why a machine cannot start one; `.ci/run` sets DKP_REQUIRE_SLURM=1, which turns that reason into a
test failure instead of a skip, so CI cannot go green without running the Slurm test.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

DAEMONS = ("munged", "slurmctld", "slurmd")
CLIENTS = ("sbatch", "squeue", "scancel", "sinfo")


def why_not() -> str | None:
    """None when this machine can start the test cluster, else the reason."""
    if os.geteuid() != 0:
        return "starting a Slurm cluster needs root (slurmd runs jobs as their owner)"
    missing = [b for b in (*DAEMONS, *CLIENTS) if shutil.which(b) is None and not Path("/usr/sbin", b).exists()]
    if missing:
        return f"{', '.join(missing)} not installed (apt-get install -y slurm-wlm munge)"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _binary(name: str) -> str:
    return shutil.which(name) or str(Path("/usr/sbin") / name)


@dataclass
class Cluster:
    """A running test cluster; ``env`` is what a client (sbatch, dkp) needs to reach it."""

    root: Path
    partition: str = "debug"
    cpus: int = 2
    procs: list[subprocess.Popen] = field(default_factory=list)

    @property
    def conf(self) -> Path:
        return self.root / "slurm.conf"

    @property
    def env(self) -> dict[str, str]:
        return {"SLURM_CONF": str(self.conf)}

    def logs(self) -> str:
        out = []
        for name in ("munged.log", "slurmctld.log", "slurmd.log"):
            p = self.root / name
            if p.is_file():
                out.append(f"--- {name}\n" + "\n".join(p.read_text(errors="replace").splitlines()[-30:]))
        return "\n".join(out)

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(list(args), env={**os.environ, **self.env}, capture_output=True, text=True,
                              check=check, timeout=30)

    def stop(self) -> None:
        for p in reversed(self.procs):
            if p.poll() is None:
                p.terminate()
        for p in reversed(self.procs):
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self.procs.clear()


def start_cluster(root: Path, cpus: int = 2) -> Cluster:
    """munged, slurmctld and slurmd in the foreground as children of this process; waits until the node is idle."""
    root.mkdir(parents=True, exist_ok=True)
    cluster = Cluster(root, cpus=cpus)
    for d in ("munge", "state", "spool"):
        (root / d).mkdir(exist_ok=True)
    os.chmod(root / "munge", 0o700)
    key = root / "munge" / "munge.key"
    key.write_bytes(os.urandom(1024))
    os.chmod(key, 0o400)
    sock = root / "munge" / "munge.socket"
    ctl_port, d_port = _free_port(), _free_port()
    cluster.conf.write_text(f"""\
ClusterName=dkptest
SlurmctldHost=localhost
SlurmctldPort={ctl_port}
SlurmdPort={d_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={sock}
StateSaveLocation={root / 'state'}
SlurmdSpoolDir={root / 'spool'}
SlurmctldPidFile={root / 'slurmctld.pid'}
SlurmdPidFile={root / 'slurmd.pid'}
SlurmctldLogFile={root / 'slurmctld.log'}
SlurmdLogFile={root / 'slurmd.log'}
SlurmdParameters=config_overrides
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/builtin
SchedulerParameters=sched_interval=1
MpiDefault=none
ReturnToService=2
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MinJobAge=600
KillWait=5
InactiveLimit=0
NodeName=localhost CPUs={cpus} State=UNKNOWN
PartitionName={cluster.partition} Nodes=localhost Default=YES MaxTime=INFINITE State=UP
""", encoding="utf-8")
    env = {**os.environ, **cluster.env}
    try:
        cluster.procs.append(subprocess.Popen(
            [_binary("munged"), "-F", "--force", f"--socket={sock}", f"--key-file={key}",
             f"--pid-file={root / 'munge' / 'munged.pid'}", f"--log-file={root / 'munged.log'}",
             f"--seed-file={root / 'munge' / 'munged.seed'}"], env=env,
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT))
        _wait(lambda: sock.exists(), 10, "munged did not open its socket", cluster)
        for daemon, extra in (("slurmctld", ["-i"]), ("slurmd", ["-N", "localhost"])):
            cluster.procs.append(subprocess.Popen([_binary(daemon), "-D", *extra], env=env,
                                                  stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT))
            if daemon == "slurmctld":
                _wait(lambda: cluster.run("sinfo", "-h", check=False).returncode == 0, 30,
                      "slurmctld did not answer", cluster)
        _wait(lambda: cluster.run("sinfo", "-h", "-o", "%t", check=False).stdout.strip() == "idle", 30,
              "the node did not become idle", cluster)
    except BaseException:
        cluster.stop()
        raise
    return cluster


def _wait(ok, seconds: float, what: str, cluster: Cluster) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if ok():
            return
        for p in cluster.procs:
            if p.poll() is not None:
                raise RuntimeError(f"{what}: {Path(p.args[0]).name} exited with {p.returncode}\n{cluster.logs()}")
        time.sleep(0.2)
    raise RuntimeError(f"{what} within {seconds:.0f} s\n{cluster.logs()}")


def main(argv: list[str]) -> int:
    """``python tests/slurm_testing.py DIR``: start the test cluster in DIR and keep it up until Ctrl-C (or
    SIGTERM), for trying `--launcher slurm` by hand: `SLURM_CONF=DIR/slurm.conf dkp eval ... --launcher slurm`."""
    import signal

    if len(argv) != 1:
        print("usage: python tests/slurm_testing.py DIR   (as root; apt-get install -y slurm-wlm munge)")
        return 2
    reason = why_not()
    if reason is not None:
        print(f"cannot start a test cluster: {reason}")
        return 1
    cluster = start_cluster(Path(argv[0]).resolve())
    signal.signal(signal.SIGTERM, lambda signum, frame: (_ for _ in ()).throw(KeyboardInterrupt()))
    print(f"test Slurm cluster up ({cluster.cpus} CPUs, partition {cluster.partition}); in another shell:\n"
          f"  export SLURM_CONF={cluster.conf}\nCtrl-C stops it.", flush=True)
    try:
        while all(p.poll() is None for p in cluster.procs):
            time.sleep(1)
        print(f"a daemon exited\n{cluster.logs()}")
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        cluster.stop()


if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv[1:]))
