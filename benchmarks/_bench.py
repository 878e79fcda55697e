"""What every benchmark script shares: the machine's state in each results.json entry
(date, command, load average, CPU and its instruction set, pinning), merging one entry
into results.json, and one LAMMPS job whose loop times give the cost of an analysis.

Not a benchmark itself (``insitu bench`` skips files starting with ``_``)."""

from __future__ import annotations

import datetime
import json
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results.json"


def instruction_set() -> str:
    """The widest x86 vector extension of this CPU (from /proc/cpuinfo flags)."""
    try:
        flags = set(next(line for line in Path("/proc/cpuinfo").read_text().splitlines()
                         if line.startswith("flags")).split(":", 1)[1].split())
    except (OSError, StopIteration):
        return platform.machine()
    for name, flag in (("AVX-512", "avx512f"), ("AVX2", "avx2"), ("AVX", "avx"),
                       ("SSE4.2", "sse4_2")):
        if flag in flags:
            extra = [f for f in ("avx512_vnni", "avx_vnni", "fma") if f in flags]
            return name + (f" ({', '.join(extra)})" if extra else "")
    return platform.machine()


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def pin(core: int | None) -> list[int]:
    """Pin this process (and its future children) to ``core`` (None: leave as is);
    returns the CPUs it may run on."""
    if core is not None:
        os.sched_setaffinity(0, {int(core)})
    return sorted(os.sched_getaffinity(0))


def cpu_times() -> list[int] | None:
    """The machine's CPU time counters (/proc/stat 'cpu' line: user, nice, system, idle,
    iowait, irq, softirq, steal, ...), in clock ticks; None where unreadable."""
    try:
        line = Path("/proc/stat").read_text().splitlines()[0].split()
        return [int(x) for x in line[1:]] if line[0] == "cpu" else None
    except (OSError, IndexError, ValueError):
        return None


def machine_state() -> dict:
    """The fields every results.json entry carries."""
    return {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "command": " ".join(["python", *sys.argv]),
            "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
            "cpu": cpu_model(), "instruction_set": instruction_set(),
            "cpus_on_machine": os.cpu_count(), "runs_on_cpus": sorted(os.sched_getaffinity(0)),
            "host": platform.node(), "cpu_times_at_start": cpu_times(),
            "own_cpu_s_at_start": own_cpu_seconds(), "wall_s_at_start": time.monotonic()}


def own_cpu_seconds() -> float:
    """CPU seconds of this process and of its children waited for (the MPI jobs it ran)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def finish(entry: dict, own_processes: int = 1) -> dict:
    """Adds the load average at the end, the fraction of the CPU time taken by the
    hypervisor during the benchmark (``steal_fraction``: other virtual machines on the same
    host; the machine's own load average does not show it), the cores other processes of
    this machine kept busy on average (``other_work_cores``: the machine's busy CPU time
    less the benchmark's own and its jobs') and whether someone else's work shared the
    machine (a busy machine makes every figure suspect); ``own_processes``: how many busy
    processes the benchmark itself ran last (its MPI ranks), which the 1-minute load
    average at the end still counts."""
    entry["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    start, end = entry.pop("cpu_times_at_start", None), cpu_times()
    own = own_cpu_seconds() - entry.pop("own_cpu_s_at_start", 0.0)
    wall = time.monotonic() - entry.pop("wall_s_at_start", time.monotonic())
    if start and end and len(end) > 7:  # the hypervisor's share of a virtual machine's CPUs
        spent = [b - a for a, b in zip(start, end)]
        entry["steal_fraction"] = round(spent[7] / max(sum(spent[:8]), 1), 4)
        busy = (spent[0] + spent[1] + spent[2] + spent[5] + spent[6]) / os.sysconf("SC_CLK_TCK")
        if wall > 0:
            entry["other_work_cores"] = round(max(busy - own, 0.0) / wall, 3)
    entry["own_processes"] = int(own_processes)
    entry["machine_busy"] = is_busy(entry)
    return entry


def is_busy(entry: dict) -> bool:
    """Other work on the machine: other processes kept more than a quarter of a core busy on
    average during the benchmark (``other_work_cores``); where that could not be read, a
    1-minute load above the machine's cores before the benchmark started, or at the end
    more than half a core above the benchmark's own processes (the load average lags: it
    still counts a benchmark that ended just before)."""
    if "other_work_cores" in entry:
        return bool(entry["other_work_cores"] > 0.25)
    start = entry["load_average_at_start"][0]
    end = entry["load_average_at_end"][0] - entry.get("own_processes", 1)
    return bool(start > (os.cpu_count() or 1) or end > 0.5)


def merge_results(key: str, value: dict, path: Path = RESULTS) -> Path:
    """Write ``value`` under ``key`` of results.json, keeping the other keys."""
    data = {}
    if path.exists():
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError:
            data = {}
    data[key] = value
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(path)
    return path


LOOP = re.compile(r"Loop time of ([\d.eE+-]+) on (\d+) procs for (\d+) steps")


def lammps_loop_times(script: str, workdir: Path, nprocs: int, timeout: float = 3600):
    """Run ``script`` with ``mpirun -np nprocs lmp``; the ``Loop time`` of each ``run``
    (seconds, in order) and LAMMPS's output."""
    from insitu.launch import lammps_env, mpirun_command

    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "in.lmp").write_text(script)
    env = lammps_env()
    env.setdefault("OMPI_MCA_mpi_yield_when_idle", "1")
    env.setdefault("NUMBA_NUM_THREADS", "1")
    proc = subprocess.run(mpirun_command(nprocs, "in.lmp", extra=["-log", "log.lammps"]),
                          cwd=workdir, env=env, capture_output=True, text=True, timeout=timeout)
    if proc.returncode:
        raise RuntimeError(proc.stdout[-3000:] + proc.stderr[-3000:])
    return [float(m.group(1)) for m in LOOP.finditer(proc.stdout)], proc.stdout


SECTION = re.compile(r"^(Pair|Neigh|Comm|Output|Modify|Other)\s*\|\s*([\d.eE+-]*)\s*\|"
                     r"\s*([\d.eE+-]+)\s*\|\s*([\d.eE+-]*)\s*\|", re.M)


def lammps_sections(stdout: str) -> list[dict]:
    """Per ``run``, in order, LAMMPS's "MPI task timing breakdown": section -> seconds of
    the slowest rank (the average where LAMMPS gives no maximum, i.e. Other)."""
    runs = []
    for block in stdout.split("MPI task timing breakdown")[1:]:
        block = block.split("\n\n\n")[0].split("Nlocal")[0]
        runs.append({m.group(1): float(m.group(4) or m.group(3)) for m in SECTION.finditer(block)})
    return runs


SYSTEM = """
units metal
lattice fcc 3.52
region box block 0 {cells} 0 {cells} 0 {cells}
create_box 1 box
create_atoms 1 box
mass 1 58.69
pair_style eam
pair_coeff 1 1 Ni_u3.eam
neighbor 2.0 bin
neigh_modify delay 0 every 1 check yes
velocity all create 1800 4928459 loop geom
fix md all nvt temp 900 900 0.1
thermo 100
run {every}
run {steps}
comm_modify cutoff {comm}
{md_block}"""

ATTACH = """python insitu_attach input {n} SELF {id} {model} every={every} log={id}.h5{extra} &
    format p{letters} here "from insitu.coupling import insitu_attach"
python insitu_attach invoke
fix {id} all python/invoke {every} end_of_step insitu_{id}
run {every}
{block}unfix {id}
unfix insitu_{id}_thermo
"""


def analysis_cost(model: Path, cells: int, nprocs: int, every: int, calls: int,
                  variants: dict | None = None, workdir: Path | None = None,
                  repeats: int = 3, split_runs: bool = False) -> dict:
    """The cost of one analysis call as the user pays it, from LAMMPS's own loop times in
    one job: EAM Ni (4 cells^3 atoms at 900 K) runs ``every * calls`` MD steps without the
    analysis (at LAMMPS's default ghost cutoff, then at the one the model needs), then,
    ``repeats`` times, each entry of ``variants`` (name -> extra ``insitu_attach`` options,
    e.g. ``mc_passes=1``, or ``model=PATH`` for another file; default: the model as
    shipped) attached (``fix python/invoke``
    every ``every`` steps, HDF5 log on; a first call of ``every`` steps before, JIT and
    session start excluded), detached (``unfix``) and followed by the same MD steps
    without the analysis. Cost of a call in one round = (loop time with - mean of the
    loop times without just before and just after) / calls; the figure is the median over
    the rounds (the machines are shared: a neighbour's burst shifts one round, not the
    median), with every round kept. In MD steps: divided by the time of one MD step at
    the same ghost cutoff (median of the MD-only blocks). The medians of the internal
    timer (the log's ``total``, which stops before the HDF5 append) are kept beside it.

    The same difference of LAMMPS's own timing breakdown, slowest rank, gives
    ``modify_call_s``: the Modify section (where ``fix python/invoke`` runs: the call, its
    waits for other ranks and the log append) with minus without the analysis, per call,
    and ``pair_change_per_call_s``: the force loop's change (what a call costs the MD steps
    after it, e.g. through evicted caches). The loop-time difference carries the MD's own
    run-to-run scatter (on a shared machine +-5-10 % per block of a few seconds, i.e. tens
    of ms per call); the Modify difference does not.

    ``split_runs``: each measured block runs as ``calls`` LAMMPS runs of ``every`` steps
    (one call at the end of each run with the analysis), so each call's loop time and
    Modify section are read on their own: ``call_s_run_median`` (``modify_call_s_run_median``)
    is the median over the runs with the analysis less the median over the MD-only runs
    beside them, per round, the median over the rounds. A burst of other work on a shared
    machine then moves a few runs, not the figure; the block figures above stay the sums
    (they include every burst)."""
    import tempfile

    import numpy as np

    from insitu.coupling.rank_analysis import STAGES
    from insitu.io.phase_log import read_log
    from insitu.model import Classifier

    clf = Classifier.load(model)
    variants = variants or {"default": ""}
    comm = float(np.ceil(clf.exchange_cutoff + 2.0 + 0.1))  # in situ: the halo exchange
    steps = every * calls
    block = f"run {every}\n" * calls if split_runs else f"run {steps}\n"
    runs_per_block = calls if split_runs else 1
    text = SYSTEM.format(cells=cells, comm=comm, every=every, steps=steps, md_block=block)
    ids = {name: [] for name in variants}
    for r in range(repeats):
        for k, (name, options) in enumerate(variants.items()):
            aid = f"a{k}r{r}"
            # the ghost check reads LAMMPS's log, which names the first run's ghost cutoff
            # only: the cutoff set before the measured runs is checked here instead
            words = options.split()  # "model=PATH": this variant attaches another file
            attached = next((w[6:] for w in words if w.startswith("model=")), model)
            words = [w for w in words if not w.startswith("model=")]
            extra = " check_ghost=no" + "".join(f" {w}" for w in words)
            n = 6 + len(words)
            text += ATTACH.format(n=n, id=aid, model=attached, every=every, block=block,
                                  extra=extra, letters="s" * (n - 1))
            text += block
            ids[name].append(aid)
    with tempfile.TemporaryDirectory() as tmp:
        wd = Path(workdir or tmp)
        loops, stdout = lammps_loop_times(text, wd, nprocs)
        sections = lammps_sections(stdout)
        if len(sections) != len(loops):
            sections = []
        loops, run_loops = _blocks(loops, runs_per_block)
        sections, run_sections = _blocks(sections, runs_per_block)
        modify_runs = [[s["Modify"] for s in block] for block in run_sections]
        logs = {aid: read_log(wd / f"{aid}.h5") for aid_list in ids.values()
                for aid in aid_list}
    # loops: warm, MD at default ghosts, MD at the model's ghosts, then per round and
    # variant: first call, with the analysis, MD again
    md_default = loops[1] / steps
    md_blocks = [loops[2]] + loops[5::3]
    md_step = float(np.median(md_blocks)) / steps
    out = {"model": Path(model).name, "descriptor": clf.descriptor.kind,
           "consensus": None if clf.consensus is None else clf.consensus.to_metadata(),
           "atoms": 4 * cells ** 3, "ranks": nprocs, "every": every, "calls": calls,
           "repeats": repeats, "comm_cutoff_angstrom": comm, "md_step_s": md_step,
           "md_step_default_ghosts_s": md_default,
           "md_without_analysis_loop_s": md_blocks, "runs": {}}
    n_var = len(variants)
    for k, (name, options) in enumerate(variants.items()):
        rounds, with_loops, first_loops, modify, pair = [], [], [], [], []
        run_medians, modify_run_medians = [], []
        for r in range(repeats):
            j = r * n_var + k  # this run's block; MD-only blocks before and after it
            with_loop = loops[4 + 3 * j]
            without = 0.5 * (md_blocks[j] + md_blocks[j + 1])
            rounds.append((with_loop - without) / calls)
            before, within, after = (2 + 3 * j, 4 + 3 * j, 5 + 3 * j)
            if split_runs:
                run_medians.append(_median_difference(run_loops, within, (before, after)))
            if sections:  # before, with, after the analysis
                b, w, a = (sections[i] for i in (before, within, after))
                modify.append((w["Modify"] - 0.5 * (b["Modify"] + a["Modify"])) / calls)
                pair.append((w["Pair"] - 0.5 * (b["Pair"] + a["Pair"])) / calls)
                if split_runs:
                    modify_run_medians.append(
                        _median_difference(modify_runs, within, (before, after)))
            with_loops.append(with_loop)
            first_loops.append(loops[3 + 3 * j])
        per_call = float(np.median(rounds))
        total = np.concatenate([logs[aid].timings["total"][1:] for aid in ids[name]])
        passes = [int(w.split("=")[1]) for w in options.split() if w.startswith("mc_passes=")]
        out["runs"][name] = {
            "options": options, "mc_passes": passes[0] if passes else clf.mc_passes,
            "loop_with_analysis_s": with_loops,
            "call_s": per_call, "md_steps_per_call": per_call / md_step,
            "call_s_per_round": rounds,
            "md_steps_per_call_range": [min(rounds) / md_step, max(rounds) / md_step],
            "first_call_loop_s": first_loops,
            "modify_call_s": float(np.median(modify)) if modify else None,
            "modify_call_s_per_round": modify,
            "md_steps_per_call_modify": float(np.median(modify)) / md_step if modify else None,
            "pair_change_per_call_s": float(np.median(pair)) if pair else None,
            "internal_timer_call_s": float(np.median(total)),
            **({"call_s_run_median": float(np.median(run_medians)),
                "call_s_run_median_per_round": run_medians,
                "modify_call_s_run_median": float(np.median(modify_run_medians))
                if modify_run_medians else None,
                "modify_call_s_run_median_per_round": modify_run_medians}
               if split_runs else {}),
            "internal_stages_s": {
                s: float(np.median(np.concatenate([logs[aid].timings[s][1:]
                                                   for aid in ids[name]])))
                for s in STAGES if s != "total"},
        }
    return out


def _blocks(values: list, runs_per_block: int) -> tuple[list, list]:
    """Per-run ``values`` of an :func:`analysis_cost` job grouped into its blocks: the
    warm-up, the MD at default ghosts, each first call, one value each; every measured
    block ``runs_per_block`` runs. Returns (each block's sum, each block's runs)."""
    import numpy as np

    if runs_per_block == 1 or not values:
        return values, [[v] for v in values]
    sizes = [1, 1, runs_per_block]
    while sum(sizes) < len(values):  # per round and variant: first call, with, MD after
        sizes += [1, runs_per_block, runs_per_block]
    if sum(sizes) != len(values):
        raise RuntimeError(f"{len(values)} runs do not form blocks of {runs_per_block}")
    starts = np.concatenate([[0], np.cumsum(sizes)])
    runs = [values[a:b] for a, b in zip(starts[:-1], starts[1:])]
    if isinstance(values[0], dict):
        return [{key: sum(v[key] for v in block) for key in block[0]} for block in runs], runs
    return [float(sum(block)) for block in runs], runs


def _median_difference(runs: list, within: int, beside: tuple) -> float:
    """Median of block ``within``'s runs less the median of the runs of the blocks
    ``beside`` it (pooled)."""
    import numpy as np

    baseline = np.concatenate([runs[b] for b in beside])
    return float(np.median(runs[within]) - np.median(baseline))


def best_rate(fn, n_items: int, repeats: int = 7, min_time: float = 0.5) -> float:
    """Best of ``repeats`` rates, each over at least ``min_time`` s (the best run is the
    one least disturbed by other processes)."""
    best = 0.0
    for _ in range(repeats):
        t0, k = time.perf_counter(), 0
        while True:
            fn()
            k += 1
            dt = time.perf_counter() - t0
            if dt >= min_time:
                break
        best = max(best, k * n_items / dt)
    return best
