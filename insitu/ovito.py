"""OVITO integration (optional: needs the ``ovito`` Python module, ``pip install ovito``).

Two pipeline modifiers, usable from OVITO's Python API (``pipeline.modifiers.append(...)``)
and in OVITO Pro:

* :class:`InsituClassifier` classifies the pipeline's particles with an insitu model, through
  :meth:`insitu.Classifier.classify` (the same labels as offline and in situ), and sets
  ``Structure Type`` with one named type per class of the model (``0`` is ``unknown``, class
  k of the model has id k + 1), ``Confidence`` and, for a model run with MC dropout,
  ``Mutual Information`` (bits). Particles are coloured by class unless
  ``color_by_type=False``; the global attributes ``InsituClassifier.counts.<class>`` and
  ``InsituClassifier.fractions.<class>`` hold the counts.
* :class:`ClassColumnToStructureType` turns the per-atom class index written in situ
  (``dump custom ... i_ID_class d_ID_conf``; -1 for unknown) into the same named
  ``Structure Type`` and ``Confidence`` properties, without classifying again.

Dumps written by ``insitu classify -o`` need neither: their ``StructureType`` column holds
the class names, which OVITO's LAMMPS dump reader maps to ``Structure Type`` with named
types by itself.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

try:
    from ovito.data import DataCollection, ParticleType
    from ovito.pipeline import ModifierInterface
    from traits.api import Bool, Float, Int, Str
except ModuleNotFoundError as exc:  # pragma: no cover - exercised without ovito only
    raise ModuleNotFoundError("insitu.ovito needs the OVITO Python module: pip install ovito "
                              "(or pip install 'insitu[dev]')", name="ovito") from exc

from .analysis.plotting import CLASS_COLORS
from .frame import Frame

__all__ = ["InsituClassifier", "ClassColumnToStructureType", "frame_from_data",
           "set_structure_types", "load_model"]

UNKNOWN_ID = 0
"""Structure Type id of ``unknown`` (OVITO's convention for "Other"); class k is k + 1."""


def load_model(model: str | Path, mc_passes: int = 0):
    """A :class:`insitu.Classifier` from a path or the name of a shipped model."""
    from .model import Classifier
    from .resources import model_path

    path = Path(model)
    if not path.is_file() and path.parent == Path("."):
        path = model_path(str(model))
    return Classifier.load(path, mc_passes=mc_passes) if mc_passes else Classifier.load(path)


def frame_from_data(data: DataCollection, type_names: dict | None = None) -> Frame:
    """An :class:`insitu.Frame` from an OVITO data collection: positions relative to the
    cell origin, cell vectors as rows, periodicity, identifiers. Types are OVITO's numeric
    particle types, or, when ``type_names`` (``{type: name}``, e.g. a model's atom types)
    names every named OVITO type, the type of that name."""
    particles = data.particles
    positions = np.asarray(particles.positions, np.float64)
    if data.cell is not None:
        matrix = np.asarray(data.cell[...], np.float64)
        origin, cell, pbc = matrix[:, 3], matrix[:, :3].T, np.asarray(data.cell.pbc, bool)
    else:
        origin, cell, pbc = np.zeros(3), np.zeros((3, 3)), np.zeros(3, bool)
    n = len(positions)
    ptypes = particles.particle_types
    types = np.ones(n, np.int64) if ptypes is None else np.asarray(ptypes, np.int64)
    names = {} if ptypes is None else {t.id: t.name for t in ptypes.types if t.name}
    if type_names and names:
        by_name = {str(v): int(k) for k, v in type_names.items()}
        if set(names.values()) <= set(by_name):
            lut = {tid: by_name[name] for tid, name in names.items()}
            types = np.array([lut.get(int(t), int(t)) for t in types], np.int64)
            names = {by_name[name]: name for name in names.values()}
    ids = particles.identifiers
    frame = Frame(positions - origin, cell, pbc, types,
                  None if ids is None else np.asarray(ids, np.int64))
    frame.info["origin"] = origin
    if names:
        frame.info["type_names"] = names
    return frame


def _rgb(name: str, i: int) -> tuple:
    fallback = ("#ff7f0e", "#e377c2", "#bcbd22", "#393b79", "#637939")
    value = CLASS_COLORS.get(name, fallback[i % len(fallback)]).lstrip("#")
    return tuple(int(value[k:k + 2], 16) / 255.0 for k in (0, 2, 4))


def set_structure_types(data: DataCollection, classes, label_index, confidence=None,
                        mutual_information=None, color_by_type: bool = True,
                        prefix: str = "InsituClassifier") -> None:
    """Write ``Structure Type`` (named types: ``unknown`` = 0, class k = k + 1), and
    ``Confidence`` / ``Mutual Information`` when given, into ``data``; colour the particles
    by class when ``color_by_type``; store counts and fractions as global attributes."""
    label_index = np.asarray(label_index, np.int64)
    if len(label_index) != data.particles.count:
        raise ValueError(f"{len(label_index)} labels for {data.particles.count} particles")
    ids = np.where(label_index < 0, UNKNOWN_ID, label_index + 1).astype(np.int32)
    particles = data.particles_
    prop = particles.create_property("Structure Type", data=ids)
    names = ["unknown", *classes]
    colors = [_rgb(name, i) for i, name in enumerate(names)]
    for tid, (name, color) in enumerate(zip(names, colors)):
        prop.types.append(ParticleType(id=tid, name=name, color=color, enabled=True))
    if confidence is not None:
        particles.create_property("Confidence", data=np.asarray(confidence, np.float32))
    if mutual_information is not None:
        particles.create_property("Mutual Information",
                                  data=np.asarray(mutual_information, np.float32))
    if color_by_type:
        particles.create_property("Color", data=np.asarray(colors)[ids])
    counts = np.bincount(ids, minlength=len(names))
    n = max(len(ids), 1)
    for tid, name in enumerate(names):
        data.attributes[f"{prefix}.counts.{name}"] = int(counts[tid])
        data.attributes[f"{prefix}.fractions.{name}"] = float(counts[tid] / n)


class InsituClassifier(ModifierInterface):
    """Classify the pipeline's particles with an insitu model (see the module docstring).

    ``model``: a ``.onnx`` path or a shipped model name; ``threshold``: confidence threshold
    (negative: the model's); ``mc_passes``: MC-dropout passes for the mutual information (0:
    the model's default, 1: dropout off); ``color_by_type``: colour particles by class."""

    model = Str("crystal-nm", label="insitu model (.onnx path or shipped name)")
    threshold = Float(-1.0, label="confidence threshold (negative: the model's)")
    mc_passes = Int(0, label="MC-dropout passes (0: the model's default, 1: none)")
    color_by_type = Bool(True, label="colour particles by class")

    def classifier(self):
        """The loaded model (cached while ``model`` and ``mc_passes`` stay the same)."""
        key = (self.model, int(self.mc_passes))
        cached = self.__dict__.get("_insitu_cache")
        if cached is None or cached[0] != key:
            cached = (key, load_model(self.model, int(self.mc_passes)))
            self.__dict__["_insitu_cache"] = cached
        return cached[1]

    def modify(self, data: DataCollection, frame: int, **kwargs) -> None:
        """Classify and write the properties (OVITO calls this for every frame)."""
        clf = self.classifier()
        system = frame_from_data(data, clf.atom_types)
        threshold = float(self.threshold) if self.threshold >= 0 else None
        result = clf.classify(system, threshold=threshold)
        set_structure_types(data, result.classes, result.label_index, result.confidence,
                            getattr(result, "mutual_information", None), self.color_by_type)


class ClassColumnToStructureType(ModifierInterface):
    """Named ``Structure Type`` from a per-atom class index column written in situ
    (``i_<ID>_class``, -1 unknown) and ``Confidence`` from ``d_<ID>_conf``: ``analysis_id``
    names the analysis (the ID of ``insitu_attach``), ``model`` gives the class names."""

    analysis_id = Str("nm", label="analysis ID (columns i_<ID>_class, d_<ID>_conf)")
    model = Str("crystal-nm", label="the model the run used (.onnx path or shipped name)")
    color_by_type = Bool(True, label="colour particles by class")

    def modify(self, data: DataCollection, frame: int, **kwargs) -> None:
        """Copy the columns into named properties (OVITO calls this for every frame)."""
        column = f"i_{self.analysis_id}_class"
        if column not in data.particles:
            raise KeyError(f"no particle property {column!r} (has {list(data.particles)}): "
                           "declare `fix ... property/atom i_ID_class d_ID_conf` and dump it")
        conf_name = f"d_{self.analysis_id}_conf"
        confidence = data.particles[conf_name] if conf_name in data.particles else None
        classes = load_model(self.model).classes
        set_structure_types(data, classes, np.asarray(data.particles[column]), confidence,
                            None, self.color_by_type, prefix="ClassColumnToStructureType")
