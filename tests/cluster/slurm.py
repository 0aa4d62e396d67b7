"""A real single-node SLURM for tests: munged, slurmctld and slurmd started here, stopped by their PIDs.

State, spool, logs and the munge socket live in a temporary directory. The configuration must be
/etc/slurm/slurm.conf (the jobstep plugin strips SLURM_CONF inside jobs), so an existing one is moved
aside and put back afterwards. The node has a fake GPU (gres with File=/dev/null) so that rules asking
for ``gpu`` can be scheduled and their requests seen in the controller's records.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

DAEMONS = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "scontrol")
SLURM_CONF = Path("/etc/slurm/slurm.conf")
GRES_CONF = Path("/etc/slurm/gres.conf")


def missing_programs() -> list[str]:
    return [p for p in DAEMONS if shutil.which(p) is None and not Path("/usr/sbin", p).exists()]


def _program(name: str) -> str:
    return shutil.which(name) or str(Path("/usr/sbin", name))


def slurm_conf(state: Path, cpus: int, memory_mb: int) -> str:
    return f"""ClusterName=lossgeomtest
SlurmctldHost=localhost
AuthType=auth/munge
AuthInfo=socket={state}/munge/munge.socket
CredType=cred/munge
SlurmUser=root
SlurmdUser=root
StateSaveLocation={state}/ctld
SlurmdSpoolDir={state}/spool
SlurmctldPidFile={state}/slurmctld.pid
SlurmdPidFile={state}/slurmd.pid
SlurmctldLogFile={state}/slurmctld.log
SlurmdLogFile={state}/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SlurmdParameters=config_overrides
MpiDefault=none
ReturnToService=2
MinJobAge=7200
SchedulerType=sched/backfill
GresTypes=gpu
NodeName=localhost NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={memory_mb} Gres=gpu:1 State=UNKNOWN
PartitionName=test Nodes=localhost Default=YES MaxTime=INFINITE State=UP
"""


class LocalSlurm:
    """Start with :meth:`start`, stop with :meth:`stop` (kills exactly the processes it started)."""

    def __init__(self, state: Path, cpus: int = 2, memory_mb: int = 64000) -> None:
        self.state = Path(state)
        self.cpus, self.memory_mb = cpus, memory_mb
        self.processes: dict[str, subprocess.Popen] = {}
        self._saved: dict[Path, bytes | None] = {}

    def _write_config(self, path: Path, text: str) -> None:
        self._saved[path] = path.read_bytes() if path.exists() else None
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)

    def _spawn(self, name: str, *args: str) -> None:
        log = open(self.state / f"{name}.out", "w")
        self.processes[name] = subprocess.Popen([_program(name), *args], stdout=log, stderr=subprocess.STDOUT)

    def start(self, timeout: float = 60) -> "LocalSlurm":
        for sub in ("munge", "ctld", "spool"):
            (self.state / sub).mkdir(parents=True, exist_ok=True)
        os.chmod(self.state / "munge", 0o755)
        self._write_config(SLURM_CONF, slurm_conf(self.state, self.cpus, self.memory_mb))
        self._write_config(GRES_CONF, "AutoDetect=off\nName=gpu File=/dev/null\n")
        munge = self.state / "munge"
        self._spawn("munged", "--foreground", "--force", f"--socket={munge}/munge.socket",
                    f"--pid-file={munge}/munged.pid", f"--log-file={munge}/munged.log", f"--seed-file={munge}/seed")
        self._wait(lambda: (munge / "munge.socket").exists(), timeout, "munged socket")
        self._spawn("slurmctld", "-D", "-i")
        self._wait(lambda: self._run("scontrol", "ping").stdout.count("UP") > 0, timeout, "slurmctld")
        self._spawn("slurmd", "-D", "-N", "localhost")
        self._wait(lambda: "idle" in self._run("sinfo", "-h", "-o", "%T").stdout, timeout, "an idle node")
        return self

    def stop(self) -> None:
        for name in ("slurmd", "slurmctld", "munged"):
            process = self.processes.pop(name, None)
            if process and process.poll() is None:
                process.terminate()
                try:
                    process.wait(20)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        for path, content in self._saved.items():
            if content is None:
                path.unlink(missing_ok=True)
            else:
                path.write_bytes(content)
        self._saved.clear()

    def log(self, name: str) -> str:
        path = self.state / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def _run(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([_program(args[0]), *args[1:]], capture_output=True, text=True, timeout=30)

    def _wait(self, ready, timeout: float, what: str) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            dead = [n for n, p in self.processes.items() if p.poll() is not None]
            if dead:
                raise RuntimeError(f"{dead[0]} exited while waiting for {what}: "
                                   f"{(self.state / f'{dead[0]}.out').read_text()[-2000:]}")
            try:
                if ready():
                    return
            except (subprocess.SubprocessError, OSError):
                pass
            time.sleep(0.5)
        raise RuntimeError(f"timed out waiting for {what}; see logs in {self.state}")
