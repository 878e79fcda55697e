"""The ``key=value`` options of ``insitu_attach`` and LAMMPS's default neighbor skins."""

from __future__ import annotations

from dataclasses import dataclass, field

from .mpi import InsituError

__all__ = ["Options", "DEFAULT_SKIN"]

# LAMMPS's default neighbor skin per unit style (neighbor command documentation).
DEFAULT_SKIN = {"lj": 0.3, "real": 2.0, "metal": 2.0, "si": 0.001, "cgs": 0.1,
                "electron": 2.0, "micro": 0.1, "nano": 0.1}


@dataclass
class Options:
    """every: the fix's interval N; log: HDF5 path or None; batch: atoms per inference
    batch; threshold: confidence threshold; threads: onnxruntime threads per rank; skin:
    the neighbor skin; log_vars: equal-style variables logged beside the fractions;
    check_ghost: check the ghost cutoff at the first call; log_mode: ``append`` (continue
    an existing log of the same analysis, refuse any other) or ``overwrite``; mc_passes:
    MC-dropout passes T (None: the model's default, 1: dropout off); consensus: a model's
    neighbour consensus on (default) or off (``consensus=no``: per-atom labels, ghosts to
    the descriptor cutoff only); screen: a model's screening network on (default) or off
    (``screen=no``: the model's own network on every atom, :mod:`insitu.model.screen`);
    keep_memory: keep freed memory in the process for the next call (default; ``no``:
    leave glibc's malloc settings alone, :mod:`.memory`)."""

    every: int
    log: str | None
    batch: int | None = None
    threshold: float | None = None
    threads: int = 1
    skin: float | None = None
    log_vars: list = field(default_factory=list)
    check_ghost: bool = True
    log_mode: str = "append"
    mc_passes: int | None = None
    consensus: bool = True
    screen: bool = True
    keep_memory: bool = True

    @classmethod
    def parse(cls, analysis_id: str, words) -> Options:
        kv = {}
        for w in words:
            if "=" not in w:
                raise InsituError(f"insitu_attach: option '{w}' is not of the form key=value")
            k, v = w.split("=", 1)
            kv[k.strip().lower()] = v.strip()
        known = {"every", "log", "batch", "threshold", "threads", "skin", "log_vars",
                 "check_ghost", "log_mode", "mc_passes", "consensus", "screen",
                 "keep_memory"}
        unknown = set(kv) - known
        if unknown:
            raise InsituError(f"insitu_attach: unknown option(s) {sorted(unknown)}; "
                              f"known: {sorted(known)}")
        if "every" not in kv:
            raise InsituError("insitu_attach: give every=N, the interval N of your "
                              f"'fix {analysis_id} all python/invoke N end_of_step "
                              f"insitu_{analysis_id}'")
        log = kv.get("log", f"insitu_{analysis_id}.h5")
        try:
            opts = cls(
                every=int(kv["every"]),
                log=None if log.lower() in ("none", "no", "off") else log,
                batch=int(kv["batch"]) if "batch" in kv else None,
                threshold=float(kv["threshold"]) if "threshold" in kv else None,
                threads=int(kv.get("threads", 1)),
                skin=float(kv["skin"]) if "skin" in kv else None,
                log_vars=[v for v in kv.get("log_vars", "").split(",") if v],
                check_ghost=kv.get("check_ghost", "yes").lower() not in ("no", "false", "0"),
                log_mode=kv.get("log_mode", "append").lower(),
                mc_passes=int(kv["mc_passes"]) if "mc_passes" in kv else None,
                consensus=_switched_on(kv, "consensus"),
                screen=_switched_on(kv, "screen"),
                keep_memory=_switched_on(kv, "keep_memory"),
            )
        except ValueError as exc:
            raise InsituError(f"insitu_attach: bad option value: {exc}") from None
        if opts.log_mode not in ("append", "overwrite"):
            raise InsituError(f"insitu_attach: log_mode={opts.log_mode}; use log_mode=append "
                              "(the default) or log_mode=overwrite")
        if opts.mc_passes is not None and opts.mc_passes < 1:
            raise InsituError(f"insitu_attach: mc_passes={opts.mc_passes}; give T >= 1 "
                              "(1: dropout off)")
        if opts.every < 1:
            raise InsituError(f"insitu_attach: every={opts.every}; give the interval N >= 1 "
                              "of the fix")
        return opts


def _switched_on(kv: dict, key: str) -> bool:
    """An on/off option, on unless given as no, false, 0 or off."""
    return kv.get(key, "yes").lower() not in ("no", "false", "0", "off")
