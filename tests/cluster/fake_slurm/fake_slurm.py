"""A fake SLURM on one machine, for the slurm launcher's tests: `sbatch`, `squeue`, `sacct`,
`scancel`, `scontrol` and `srun` as submitit calls them, array tasks run as local processes.

The executables beside this file run `$FAKE_SLURM_PYTHON fake_slurm.py COMMAND ARGS`. State
lives in `$FAKE_SLURM_DIR`:

    jobs/ID.json        what sbatch read from the script's #SBATCH lines (and its env, cwd)
    state.json          every array task: state and attempts [{start, end, state, pid}]
    flags/              scancel and scontrol requeue requests, for the scheduler
    steps/ID_I.pid      the pid of a task's `srun` step (the process SLURM signals)
    sbatch.log          one JSON line per sbatch call: job id, array, #SBATCH lines
    scheduler.pid       the scheduler: one background process, started by sbatch, that runs
                        the tasks and exits once none is left to run

A task's life is SLURM's: PENDING, then RUNNING (at most `--array=…%P` of an array at once,
and at most `$FAKE_SLURM_NODES` in all), then COMPLETED or FAILED by its exit code. Times:
`--time=M` minutes lasts M × `$FAKE_SLURM_MINUTE_S` seconds (default 60), and every other
duration is scaled alike. `--signal=SIG@S` sends SIG to the step S (scaled) seconds before the
limit; at the limit the task gets SIGTERM, then SIGKILL after `$FAKE_SLURM_GRACE_S` (state
TIMEOUT). `scontrol requeue ID_I` puts a task back to PENDING once its process has exited.
At random (`$FAKE_SLURM_PREEMPT_RATE`, `$FAKE_SLURM_NODE_FAIL_RATE`: probability per second of
each running task; seed `$FAKE_SLURM_SEED`) a task is preempted (SIGTERM, then the --signal
signal, as submitit's own preemption test sends; SIGKILL after the grace time; PREEMPTED, and
back to PENDING when the job has `--requeue` or asked for it) or its node dies (SIGKILL at once;
NODE_FAIL, not requeued: the driver must notice). A job with `--dependency=afterany:ID:…` starts
once no task of those jobs is pending or running. `scontrol show config` gives
`MaxArraySize = $FAKE_SLURM_MAX_ARRAY_SIZE` (default 1001), and sbatch refuses an array index
at or above it.
"""

from __future__ import annotations

import fcntl
import json
import os
import random
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

ACTIVE = ("PENDING", "RUNNING", "COMPLETING")
DIR = Path(os.environ.get("FAKE_SLURM_DIR", "/tmp/fake-slurm"))
MINUTE_S = float(os.environ.get("FAKE_SLURM_MINUTE_S", "60"))
SCALE = MINUTE_S / 60.0


def _env_float(name: str, default: float) -> float:
    return float(os.environ.get(name, default))


def _write_json(path: Path, doc) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(json.dumps(doc, indent=1))
    os.replace(tmp, path)


def _read_json(path: Path, default):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return default


def _max_array_size() -> int:
    return int(os.environ.get("FAKE_SLURM_MAX_ARRAY_SIZE", "1001"))


# --- sbatch ------------------------------------------------------------------------------------

def _minutes(text: str) -> float:
    """--time: M, M:S, H:M:S, D-H, D-H:M, D-H:M:S → minutes."""
    days, _, rest = text.rpartition("-")
    parts = [float(p) for p in rest.split(":")]
    if days:
        h, m, s = (parts + [0, 0])[:3]
        return float(days) * 1440 + h * 60 + m + s / 60
    if len(parts) == 1:
        return parts[0]
    if len(parts) == 2:
        return parts[0] + parts[1] / 60
    return parts[0] * 60 + parts[1] + parts[2] / 60


def sbatch(args: list[str]) -> int:
    script = Path(args[-1])
    options: dict[str, str | bool] = {}
    lines = []
    for line in script.read_text().splitlines():
        if not line.startswith("#SBATCH"):
            continue
        lines.append(line)
        key, sep, value = line[len("#SBATCH"):].strip().partition("=")
        options[key.lstrip("-")] = shlex.split(value)[0] if sep else True
    indices, parallelism = [None], None
    if "array" in options:
        spec = str(options["array"])
        spec, _, par = spec.partition("%")
        parallelism = int(par) if par else None
        indices = []
        for part in spec.split(","):
            low, _, high = part.partition("-")
            indices += range(int(low), int(high or low) + 1)
        if max(indices) >= _max_array_size():
            print("sbatch: error: Batch job submission failed: Invalid job array specification",
                  file=sys.stderr)
            return 1
    DIR.joinpath("jobs").mkdir(parents=True, exist_ok=True)
    with open(DIR / "lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        counter = DIR / "next_id"
        job_id = int(counter.read_text()) if counter.exists() else 1000
        counter.write_text(str(job_id + 1))
        signal_name, delay = "USR2", 0.0
        if "signal" in options:
            sig, _, at = str(options["signal"]).partition("@")
            signal_name, delay = sig.removeprefix("B:"), float(at or 60)
        job = {"id": job_id, "name": options.get("job-name", "sbatch"), "script": str(script),
               "cwd": os.getcwd(), "env": dict(os.environ), "indices": indices,
               "parallelism": parallelism,
               "time_s": _minutes(str(options.get("time", "60"))) * 60 * SCALE,
               "signal": signal_name, "signal_delay_s": delay * SCALE,
               "output": str(options.get("output", "slurm-%j.out")),
               "error": str(options.get("error", options.get("output", "slurm-%j.out"))),
               "requeue": bool(options.get("requeue", False)),
               "cpus_per_task": str(options.get("cpus-per-task", "1")),
               "after": _dependency(str(options.get("dependency", ""))),
               "submitted": time.time()}
        _write_json(DIR / "jobs" / f"{job_id}.json", job)
        with open(DIR / "sbatch.log", "a") as log:
            log.write(json.dumps({"job_id": job_id, "indices": indices, "lines": lines}) + "\n")
    _ensure_scheduler()
    print(f"Submitted batch job {job_id}")
    return 0


def _dependency(text: str) -> list[str]:
    """`afterany:12:13,afterany:14` → the job ids a job waits for (only `afterany` is known)."""
    after = []
    for part in filter(None, text.split(",")):
        kind, *ids = part.split(":")
        if kind != "afterany":
            raise SystemExit(f"sbatch: error: the fake knows only afterany dependencies: {part}")
        after += ids
    return after


def _ensure_scheduler() -> None:
    with open(DIR / "scheduler.lock", "a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return  # a scheduler holds it
        fcntl.flock(lock, fcntl.LOCK_UN)
    subprocess.Popen([sys.executable, __file__, "scheduler"], start_new_session=True,
                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                     stderr=open(DIR / "scheduler.log", "a"))
    for _ in range(100):  # until it holds the lock
        with open(DIR / "scheduler.lock", "a+") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                fcntl.flock(lock, fcntl.LOCK_UN)
            except BlockingIOError:
                return
        time.sleep(0.05)


# --- the scheduler ---------------------------------------------------------------------------

class Task:
    def __init__(self, job: dict, index) -> None:
        self.job, self.index = job, index
        self.id = f"{job['id']}_{index}" if index is not None else str(job["id"])
        self.state, self.attempts = "PENDING", []
        self.proc: subprocess.Popen | None = None
        self.started = 0.0
        self.signalled = self.termed = False
        self.killed: str | None = None  # why we ended it: TIMEOUT, PREEMPTED, NODE_FAIL, CANCELLED
        self.kill_at: float | None = None
        self.slot: int | None = None
        self.requeue = False  # `scontrol requeue` while it ran: back to PENDING once it exits

    def doc(self) -> dict:
        return {"state": self.state, "name": self.job["name"], "attempts": self.attempts}

    def _path(self, pattern: str) -> str:
        return (pattern.replace("%A", str(self.job["id"])).replace("%a", str(self.index or 0))
                .replace("%j", self.job_id).replace("%t", "0"))

    @property
    def job_id(self) -> str:
        """SLURM_JOB_ID: an array element's own number, else the job's."""
        if self.index is None:
            return str(self.job["id"])
        return f"{self.job['id']}{self.index:04d}"

    def start(self, slot: int) -> None:
        env = dict(self.job["env"])
        env.update({"SLURM_JOB_ID": self.job_id,
                    "SLURM_JOB_NAME": self.job["name"], "SLURM_NTASKS": "1",
                    "SLURM_PROCID": "0", "SLURM_LOCALID": "0", "SLURM_NODEID": "0",
                    "SLURM_JOB_NUM_NODES": "1", "SLURM_JOB_NODELIST": f"fakenode{slot}",
                    "SLURMD_NODENAME": f"fakenode{slot}",
                    "SLURM_CPUS_PER_TASK": self.job["cpus_per_task"],
                    "SLURM_RESTART_COUNT": str(len(self.attempts)),
                    "SLURM_SUBMIT_DIR": self.job["cwd"], "FAKE_SLURM_TASK": self.id})
        if self.index is not None:
            env.update({"SLURM_ARRAY_JOB_ID": str(self.job["id"]),
                        "SLURM_ARRAY_TASK_ID": str(self.index)})
        (DIR / "steps" / f"{self.id}.pid").unlink(missing_ok=True)
        paths = [Path(self._path(self.job[k])) for k in ("output", "error")]
        for path in paths:  # (slurmd would fail the task; submitit makes them, maybe later)
            path.parent.mkdir(parents=True, exist_ok=True)
        out, err = (open(path, "a") for path in paths)
        self.proc = subprocess.Popen(["bash", self.job["script"]], cwd=self.job["cwd"], env=env,
                                     stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                     start_new_session=True)
        out.close()
        err.close()
        self.state, self.started, self.slot = "RUNNING", time.time(), slot
        self.signalled = self.termed = False
        self.killed, self.kill_at = None, None
        self.attempts.append({"start": self.started, "end": None, "state": "RUNNING",
                              "pid": self.proc.pid, "node": f"fakenode{slot}"})

    def step_signal(self, signum: int) -> None:
        """A signal to the job step (srun's process), as `--signal` without `B:` sends it."""
        try:
            pid = int((DIR / "steps" / f"{self.id}.pid").read_text())
            os.kill(pid, signum)
        except (OSError, ValueError):
            self.group_signal(signum)  # no step yet: the batch shell

    def group_signal(self, signum: int) -> None:
        try:
            os.killpg(self.proc.pid, signum)
        except OSError:
            pass

    def end(self, why: str, now: float, grace: float) -> None:
        """SIGTERM now (`why` its state), SIGKILL after the grace time; NODE_FAIL: SIGKILL."""
        if self.killed:
            return
        self.killed = why
        if why == "NODE_FAIL":
            self.group_signal(signal.SIGKILL)
            return
        self.group_signal(signal.SIGTERM)
        self.kill_at = now + grace


def scheduler() -> int:
    lock = open(DIR / "scheduler.lock", "a+")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return 0
    (DIR / "scheduler.pid").write_text(str(os.getpid()))
    for sub in ("flags", "steps", "jobs"):
        (DIR / sub).mkdir(parents=True, exist_ok=True)
    nodes = int(os.environ.get("FAKE_SLURM_NODES", "2"))
    grace = _env_float("FAKE_SLURM_GRACE_S", 2.0)
    preempt = _env_float("FAKE_SLURM_PREEMPT_RATE", 0.0)
    node_fail = _env_float("FAKE_SLURM_NODE_FAIL_RATE", 0.0)
    rng = random.Random(int(os.environ.get("FAKE_SLURM_SEED", "0")))
    doc = _read_json(DIR / "state.json", {"tasks": {}})
    tasks: dict[str, Task] = {}
    for path in sorted((DIR / "jobs").glob("*.json"), key=lambda p: int(p.stem)):
        job = _read_json(path, None)
        for index in job["indices"]:
            task = Task(job, index)
            if task.id in doc["tasks"]:  # an earlier scheduler's: kept as it left it
                task.state = doc["tasks"][task.id]["state"]
                task.attempts = doc["tasks"][task.id]["attempts"]
                if task.state in ("RUNNING", "COMPLETING"):
                    task.state = "NODE_FAIL"
            tasks[task.id] = task
    idle_since, last = time.time(), time.time()
    while True:
        now = time.time()
        dt, last = now - last, now
        for path in (DIR / "jobs").glob("*.json"):
            job = None
            for index in _read_json(path, {}).get("indices", []):
                tid = f"{path.stem}_{index}" if index is not None else path.stem
                if tid not in tasks:
                    job = job or _read_json(path, None)
                    tasks[tid] = Task(job, index)
        for flag in sorted((DIR / "flags").iterdir()):
            kind, _, target = flag.name.partition("-")
            flag.unlink(missing_ok=True)
            for task in tasks.values():
                if task.id != target and str(task.job["id"]) != target:
                    continue
                if kind == "cancel":
                    if task.state == "PENDING":
                        task.state = "CANCELLED"
                    elif task.state == "RUNNING":
                        task.end("CANCELLED", now, grace)
                elif kind == "requeue":
                    if task.state == "RUNNING":  # SLURM ends it, then queues it again
                        task.requeue = True
                        task.kill_at = task.kill_at or now + grace
                    elif task.state not in ACTIVE:
                        task.state = "PENDING"
        running = [t for t in tasks.values() if t.state == "RUNNING"]
        for task in running:
            code = task.proc.poll()
            if code is None:
                limit = task.started + task.job["time_s"]
                if not task.signalled and now >= limit - task.job["signal_delay_s"]:
                    task.signalled = True
                    task.step_signal(getattr(signal, "SIG" + task.job["signal"]))
                if now >= limit and not task.killed:
                    task.end("TIMEOUT", now, grace)
                elif not task.killed and rng.random() < node_fail * dt:
                    task.end("NODE_FAIL", now, grace)
                elif not task.killed and rng.random() < preempt * dt:
                    task.step_signal(signal.SIGTERM)
                    task.step_signal(getattr(signal, "SIG" + task.job["signal"]))
                    task.killed, task.kill_at = "PREEMPTED", now + grace
                if task.kill_at is not None and now >= task.kill_at:
                    task.group_signal(signal.SIGKILL)
                    task.kill_at = None
                continue
            task.group_signal(signal.SIGKILL)  # what the step left behind
            requeued, task.requeue = task.requeue, False
            state = task.killed or ("REQUEUED" if requeued else
                                    "COMPLETED" if code == 0 else "FAILED")
            task.attempts[-1].update(end=now, state=state, exit_code=code)
            back = requeued or (state == "PREEMPTED" and task.job["requeue"])
            task.state = "PENDING" if back else state
            task.proc, task.slot = None, None
        busy = {t.slot for t in tasks.values() if t.state == "RUNNING"}
        for task in sorted(tasks.values(), key=lambda t: (t.job["id"], t.index or 0)):
            if task.state != "PENDING" or len(busy) >= nodes:
                continue
            if any(t.state in ACTIVE for t in tasks.values()  # --dependency=afterany:
                   if str(t.job["id"]) in task.job.get("after", ())):
                continue
            par = task.job["parallelism"]
            if par is not None and sum(t.state == "RUNNING" and t.job["id"] == task.job["id"]
                                       for t in tasks.values()) >= par:
                continue
            slot = min(set(range(nodes)) - busy)
            try:
                task.start(slot)
            except OSError as err:  # could not launch it: FAILED, as slurmd reports it
                print(f"{task.id}: {err}", file=sys.stderr, flush=True)
                task.state = "FAILED"
                task.attempts.append({"start": now, "end": now, "state": "FAILED", "pid": None})
                continue
            busy.add(slot)
        _write_json(DIR / "state.json", {"tasks": {tid: t.doc() for tid, t in tasks.items()}})
        if any(t.state in ACTIVE for t in tasks.values()):
            idle_since = now
        elif now - idle_since > 2.0:  # nothing to run: exit, unless a job came meanwhile
            fcntl.flock(lock, fcntl.LOCK_UN)
            if not _unknown_jobs(tasks):
                return 0
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return 0  # a new scheduler runs them
            idle_since = now
        time.sleep(0.1)


def _unknown_jobs(tasks: dict) -> bool:
    for path in (DIR / "jobs").glob("*.json"):
        for index in _read_json(path, {}).get("indices", []):
            if (f"{path.stem}_{index}" if index is not None else path.stem) not in tasks:
                return True
    return False


# --- the queries -------------------------------------------------------------------------------

def _tasks() -> dict[str, dict]:
    return _read_json(DIR / "state.json", {"tasks": {}})["tasks"]


def _pending_jobs() -> dict[str, dict]:
    """Tasks of jobs the scheduler has not read yet: PENDING."""
    known = _tasks()
    out = {}
    for path in (DIR / "jobs").glob("*.json") if (DIR / "jobs").exists() else []:
        job = _read_json(path, None)
        if job is None:
            continue
        for index in job["indices"]:
            tid = f"{job['id']}_{index}" if index is not None else str(job["id"])
            if tid not in known:
                out[tid] = {"state": "PENDING", "name": job["name"], "attempts": []}
    return out


def _options(args: list[str]) -> dict[str, list[str]]:
    """`--key value`, `--key=value`, `-k value`, `-flag` → {key: [values]}."""
    short = {"h": "noheader", "r": "array", "u": "user", "o": "format", "j": "jobs",
             "n": "noheader", "P": "parsable2", "X": "allocations"}
    takes = {"user", "format", "jobs", "name", "states", "partition", "signal"}
    out: dict[str, list[str]] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        if arg.startswith("--"):
            key, sep, value = arg[2:].partition("=")
        elif arg.startswith("-") and len(arg) >= 2:
            key, sep, value = short.get(arg[1], arg[1]), "", arg[2:]
            sep = "=" if value else ""
        else:
            out.setdefault("", []).append(arg)
            i += 1
            continue
        if key in ("job",):
            key = "jobs"
        if not sep and key in takes:
            i += 1
            value = args[i]
        out.setdefault(key, []).append(value if (sep or key in takes) else "")
        i += 1
    return out


def _wanted(opts: dict[str, list[str]]) -> set[str] | None:
    if "jobs" not in opts:
        return None
    return {j for value in opts["jobs"] for j in value.split(",") if j}


def _selected(tid: str, wanted: set[str] | None) -> bool:
    return wanted is None or tid in wanted or tid.split("_")[0] in wanted


def squeue(args: list[str]) -> int:
    opts = _options(args)
    fields = {"%i": lambda tid, t: tid, "%j": lambda tid, t: t["name"],
              "%T": lambda tid, t: t["state"], "%t": lambda tid, t: t["state"][:2]}
    fmt = opts.get("format", ["%i|%j|%T"])[-1]
    wanted = _wanted(opts)
    rows = [(tid, t) for tid, t in {**_pending_jobs(), **_tasks()}.items()
            if t["state"] in ACTIVE and _selected(tid, wanted)]
    if "noheader" not in opts:
        print(re.sub(r"%\w", lambda m: {"%i": "JOBID", "%j": "NAME", "%T": "STATE"}.get(
            m.group(0), "X"), fmt))
    for tid, task in rows:
        print(re.sub(r"%\w", lambda m: str(fields.get(m.group(0), lambda *_: "")(tid, task)), fmt))
    return 0


def sacct(args: list[str]) -> int:
    opts = _options(args)
    names = opts.get("format", ["JobID,State"])[-1].split(",")
    wanted = _wanted(opts)
    rows = {**_pending_jobs(), **_tasks()}
    if "noheader" not in opts:
        print("|".join(names))
    for tid, task in rows.items():
        if not _selected(tid, wanted):
            continue
        node = task["attempts"][-1].get("node", "None assigned") if task["attempts"] else \
            "None assigned"
        values = {"JobID": tid, "State": task["state"], "NodeList": node, "JobName": task["name"]}
        print("|".join(values.get(n, "") for n in names))
    return 0


def scancel(args: list[str]) -> int:
    opts = _options(args)
    (DIR / "flags").mkdir(parents=True, exist_ok=True)
    targets = opts.get("", [])
    if "signal" in opts:  # `scancel ID --signal SIG`: to the step of a running task
        steps = DIR / "steps"
        for target in targets:
            for pid_file in steps.glob(f"{target}*.pid"):
                try:
                    os.kill(int(pid_file.read_text()),
                            getattr(signal, "SIG" + opts["signal"][-1].removeprefix("SIG")))
                except (OSError, ValueError):
                    pass
        return 0
    for target in targets:
        (DIR / "flags" / f"cancel-{target}").touch()
    return 0


def scontrol(args: list[str]) -> int:
    if args[:2] == ["show", "config"]:
        print("Configuration data as of fake\n"
              f"MaxArraySize            = {_max_array_size()}\n"
              "MaxJobCount             = 10000\n"
              "SlurmctldHost[0]        = fakehost")
        return 0
    if args[:1] == ["requeue"]:
        (DIR / "flags").mkdir(parents=True, exist_ok=True)
        for target in args[1:]:
            for one in target.split(","):
                (DIR / "flags" / f"requeue-{one}").touch()
        return 0
    print(f"scontrol: fake: unsupported {args}", file=sys.stderr)
    return 1


def srun(args: list[str]) -> int:
    """Run the step's command in this process (its pid is the step's, for signals)."""
    takes = {"--output", "--error", "-o", "-e", "--ntasks", "-n", "--cpus-per-task", "-c"}
    i = 0
    while i < len(args) and args[i].startswith("-"):
        i += 2 if args[i] in takes else 1
    task = os.environ.get("FAKE_SLURM_TASK")
    if task:
        (DIR / "steps").mkdir(parents=True, exist_ok=True)
        (DIR / "steps" / f"{task}.pid").write_text(str(os.getpid()))
    os.execvp(args[i], args[i:])
    return 1


COMMANDS = {"sbatch": sbatch, "squeue": squeue, "sacct": sacct, "scancel": scancel,
            "scontrol": scontrol, "srun": srun, "scheduler": lambda _: scheduler()}

if __name__ == "__main__":
    DIR.mkdir(parents=True, exist_ok=True)
    with open(DIR / "calls.log", "a") as calls:
        calls.write(json.dumps(sys.argv[1:]) + "\n")
    sys.exit(COMMANDS[sys.argv[1]](sys.argv[2:]))
