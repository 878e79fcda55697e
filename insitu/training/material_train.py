"""``insitu train material``: a classifier for your own material, from its data to a model with
card, in one command (:func:`train_material`).

The data come from LAMMPS runs of the material (:func:`insitu.training.material.user_material`
and :func:`insitu.training.datagen.generate_crystal_dataset`) or from labelled frames
(:func:`insitu.training.material.labelled_dataset`); the classes are those of the data; the
fit, export and validation tables are those of ``insitu train fit``
(:func:`insitu.training.train.fit_from_hdf5`); the card (``<model>.md``) says what the model
was trained on and how well it does on its own held-out runs or frames. Every random choice
(velocities, removed atoms, the split, weights, batches) comes from ``seed``: the same
command with the same seed and ``threads`` gives the same model.
"""

from __future__ import annotations

import json
from pathlib import Path

from insitu.training.datagen import MISSING_FRACTIONS, default_descriptors, generate_crystal_dataset
from insitu.training.material import compact_classes, labelled_dataset, user_material
from insitu.training.model_card import (
    ARCH_TEXT,
    PARAM_NOTE,
    accuracy_text,
    pct,
    retrain_block,
    write_card,
)

__all__ = ["train_material", "write_material_card"]


def _data_section(provenance: dict, report: dict) -> list:
    if provenance.get("generator", "").endswith("labelled_dataset"):
        return [f"Labelled frames: {', '.join(f'`{f}`' for f in provenance['files'])} "
                f"({provenance['n_frames']} frames, labels from column "
                f"`{provenance['label_column']}`). Every frame gets copies with a random "
                f"fraction x of its atoms removed, x in {provenance['missing_fractions']}. "
                f"Train/validation split **by whole frame** ({provenance['val_fraction']:.0%} "
                "of each class's frames held out, seed "
                f"{provenance['seed']}).", ""]
    lines = ["LAMMPS runs of the Neighbors Map paper's protocol (Sec. 3.1): NPT ramp 100 K -> "
             f"2/3 T_m over {provenance.get('ramp_ps')} ps (snapshot every 1 ps) for the crystal; "
             f"liquid melted at 2 T_m for {provenance.get('melt_ps')} ps, then cooled 1.5 T_m -> "
             "1.05 T_m (snapshot every 2 ps). Copies with a random fraction x of the atoms "
             f"removed, x in {provenance.get('missing_fractions')}; training copies rescaled by "
             f"U(1-j, 1+j), j = {provenance.get('scale_jitter')}. Split **by MD run** (an "
             "independent ramp with other velocities for validation).", "",
             "| element | class | potential | pair_coeff | T_m (K) | lattice constant (A) | cell |",
             "|---|---|---|---|---|---|---|"]
    for m in provenance.get("materials", []):
        lines.append(f"| {m['element']} | {m['structure']} | `{m['pair_style']}` "
                     f"`{m['potential']}` | `{m.get('pair_coeff', '')}` | {m['t_melt']:.0f} | "
                     f"{m['a']} | {m['lattice']} x {'x'.join(map(str, m['reps']))} |")
    return lines + [""]


def write_material_card(out: str | Path, report: dict, provenance: dict, desc_meta: dict,
                        command: str) -> Path:
    """The card ``<out>.md`` of a material model: data, model, training, validation table,
    the command that retrains it."""
    out = Path(out)
    tables = report.get("tables", {})
    summary = tables.get("summary", {})
    hist = "\n".join(f"| {h['epoch']} | {h['loss']:.4f} | {100 * h['train_accuracy']:.2f} | "
                     f"{100 * h.get('val_accuracy_subset', float('nan')):.2f} |"
                     for h in report.get("history", []))
    text = "\n".join([
        f"# {out.stem}", "",
        f"Per-atom structure classifier for `insitu`, trained by `insitu train material`: "
        f"classes {', '.join(report['classes'])} (those present in its data).", "",
        f"Descriptor `{desc_meta.get('kind')}` (parameters in the model's metadata):", "",
        f"```json\n{json.dumps(desc_meta)}\n```", "",
        f"Model: {ARCH_TEXT[report['arch']]} Trainable parameters: {report['n_parameters']}"
        f"{PARAM_NOTE.get(report['arch'], '')}. Confidence threshold "
        f"{report.get('threshold', 0.5)}.", "",
        "## Data", "", *_data_section(provenance, report),
        f"Training atoms {report['n_train']} ({report.get('n_train_groups')} snapshots), "
        f"validation atoms {report['n_val']} ({report.get('n_val_groups')} snapshots).", "",
        "## Training", "",
        f"Adam (lr {report['lr']}, one-cycle), cross-entropy with class weights "
        f"`{report['class_weights']}`, weight decay {report['weight_decay']}, batch "
        f"{report['batch_size']}, {report['epochs']} epochs, seed {report['seed']}; "
        f"{report['seconds']} s.", "",
        "| epoch | loss | train acc % | val acc % (subset) |", "|---|---|---|---|", hist, "",
        "## Validation", "",
        f"Overall validation accuracy **{accuracy_text(summary.get('overall'))}** (crystal "
        f"atoms {pct(summary.get('crystal'))} %, liquid atoms labelled liquid "
        f"{pct(summary.get('liquid_as_liquid'))} %).", "", tables.get("markdown", ""),
        "## Retrain", "", retrain_block(command), "",
        "## Limitations", "",
        "- Valid for the material, potential and conditions of its data (zero pressure, the "
        "temperature ranges above); other elements are out of its training distribution.",
        "- One geometric channel: the descriptor treats all atom types alike.",
        "- No class that is absent from the data (e.g. no `amorphous` unless labelled).", ""])
    return write_card(out, text)


def train_material(out: str | Path, data: str | Path, descriptor: str = "nm",
                   material: dict | None = None, labelled: dict | None = None,
                   workdir: str | Path | None = None, ramp_ps: float = 10.0,
                   missing_fractions=MISSING_FRACTIONS, scale_jitter: float = 0.0,
                   seed: int = 0, epochs: int = 10, threshold: float = 0.5,
                   batch_size: int = 256, lr: float = 2e-3, threads: int | None = 1,
                   max_train: int | None = None, card: bool = True, progress: bool = True,
                   command: str = "") -> tuple[Path, dict]:
    """Data (``material``: keyword arguments of :func:`~insitu.training.material.user_material`;
    or ``labelled``: ``files``, ``label_column``, ``classes``), then fit, export, validation
    tables and card. Returns (model path, training report with ``tables``)."""
    from insitu.training.train import fit_from_hdf5

    if (material is None) == (labelled is None):
        raise ValueError("give either a material (element, structure, potential, melting "
                         "point) or labelled frames, not both")
    descriptors = default_descriptors((descriptor,))
    data = Path(data)
    if labelled is not None:
        labelled_dataset(labelled["files"], data, descriptors, labelled.get("label_column",
                         "StructureType"), labelled.get("classes"), missing_fractions,
                         seed=seed, progress=progress)
    else:
        mat = user_material(**material)
        if progress:
            print(f"{mat.name}: {mat.structure}, lattice constant {mat.a} A, "
                  f"{'x'.join(map(str, mat.reps))} cells, T_m {mat.t_melt} K", flush=True)
        generate_crystal_dataset(data, workdir=workdir, materials=[mat], descriptors=descriptors,
                                 ramp_ps=ramp_ps, missing_fractions=missing_fractions,
                                 scale_jitter=scale_jitter, seed=seed, progress=progress)
    classes = compact_classes(data)
    if len(classes) < 2:
        raise ValueError(f"{data}: the data hold one class only ({classes}); a classifier "
                         "needs at least two")
    out, report = fit_from_hdf5(data, descriptor, out=out, epochs=epochs, seed=seed,
                                threshold=threshold, max_train=max_train, batch_size=batch_size,
                                lr=lr, threads=threads, card=False, progress=progress,
                                command=command)
    if card:
        import h5py

        with h5py.File(data, "r") as h5:
            provenance = json.loads(h5.attrs.get("provenance", "{}"))
        report["card"] = str(write_material_card(out, report, provenance,
                                                 default_descriptors((descriptor,))[descriptor]
                                                 .to_metadata(), command))
    return out, report
