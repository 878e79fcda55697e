"""Classify atoms with an insitu ONNX model: features -> probabilities -> labels.

There is one classify path, :meth:`Classifier.classify`, used offline on periodic frames
and in situ on an MPI rank's local + ghost atoms: a frame becomes an open point set with
its periodic images (:meth:`insitu.Frame.to_points`), the descriptor named in the model's
metadata runs chunk by chunk, and each chunk goes through onnxruntime before the next, so
memory is bounded by the batch size.

With MC dropout (``mc_passes`` T > 1, ARISE Supp. Eqs. 4-5, :mod:`.mc_dropout`) the
probabilities are the mean of T stochastic passes of the model's head, and every atom
also gets the mutual information between prediction and weights; an atom is ``unknown``
when its MI exceeds the model's threshold or its mean probability is below the confidence
threshold. T = 1 is the deterministic network (dropout off). A model calibrated with
:mod:`insitu.training.novelty` also scores how unlike the training atoms each environment
is (its ``novelty`` output); above the model's threshold the atom is ``unknown`` too. A
model with a neighbour consensus (:mod:`.consensus`) labels each atom from the mean
probabilities of its first shell; the ghost atoms that needs are classified as well.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ..descriptors import described_mask, descriptor_from_metadata
from ..io.ase_bridge import as_frame
from ..locality import NeighborQuery, as_points, present_types, shared_query
from .consensus import CONSENSUS_METADATA, Consensus, consensus_mean, plan_consensus
from .mc_dropout import MASK_INPUT, PASS_OUTPUT, McDropout, entropy_bits, pass_statistics
from .mc_head import load_linear_head
from .novelty import NOVELTY_OUTPUT, novelty_threshold
from .onnx_format import ModelError, file_sha256, open_session, read_metadata
from .result import ClassificationResult, labels_from_probabilities
from .screen import SCREEN_METADATA, ScreenRule, load_screen, screened_predictions

__all__ = ["Classifier", "ClassificationResult", "labels_from_probabilities",
           "DEFAULT_BATCH_SIZE"]

# Atoms per inference batch: it bounds the memory of a rank.
DEFAULT_BATCH_SIZE = 1024
# Feature values per onnxruntime call: image models run 128 atoms at a time (the paper
# CNN: ~16 MB of activations instead of ~130 MB for 1024, and 10 % faster, its
# activations staying in cache; same results bit for bit); vector models a whole batch.
INPUT_VALUES = 1 << 17
# Mask values per onnxruntime call under MC dropout (atoms x passes x units): 4 MiB, so
# the masks and the masked activations stay in cache (crystal-nm: 102 atoms per call,
# the 20 passes then cost ~2.5x less than with 16 MiB; same results bit for bit).
MC_MASK_VALUES = 1 << 20


class Classifier:
    """An insitu ONNX classifier with its descriptor. Use :meth:`load`.

    Attributes: ``classes``, ``descriptor`` (built from the metadata),
    ``confidence_threshold``, ``metadata`` (all insitu.* metadata, JSON decoded), ``path``,
    ``sha256``, ``batch_size``, ``n_threads``, ``atom_types`` (dict or None), ``mc``
    (:class:`McDropout` of a model with a dropout head, else None), ``mc_passes`` (T),
    ``mi_threshold`` (bits, None without MC dropout), ``novelty_threshold`` (None for a
    model without the novelty output), ``consensus`` (the model's neighbour-consensus
    rule, :class:`.consensus.Consensus`, or None for per-atom labels), ``screen`` (the
    light network in front of the model's, a :class:`Classifier`, or None; :mod:`.screen`)
    and ``screen_rule`` (:class:`.screen.ScreenRule`), ``screen_counts`` (atoms the screen
    settled, atoms it saw, since load), ``head`` (the MC head run in numba,
    :class:`.mc_head.LinearHead`, or None: the passes run through onnxruntime).
    """

    def __init__(self, session, metadata: dict, path: Path, sha256: str, batch_size: int,
                 n_threads: int, mc_passes: int | None = None):
        self.session = session
        self.metadata = metadata
        self.path = Path(path)
        self.sha256 = sha256
        self.batch_size = int(batch_size)
        self.n_threads = int(n_threads)
        self.classes = [str(c) for c in metadata["classes"]]
        self.confidence_threshold = float(metadata.get("confidence_threshold", 0.5))
        self.atom_types = metadata.get("atom_types")
        try:
            self.descriptor = descriptor_from_metadata(metadata["descriptor"])
        except Exception as exc:  # noqa: BLE001 - report which model carries the bad data
            raise ModelError(f"{path}: cannot build the descriptor from the model's metadata "
                             f"({exc}); re-export the model with this insitu version") from exc
        inp = session.get_inputs()[0]
        self.input_name = inp.name
        self.output_name = session.get_outputs()[0].name
        self.feature_shape = tuple(int(s) for s in inp.shape[1:])
        if tuple(self.descriptor.feature_shape) != self.feature_shape:
            raise ModelError(f"{path}: the model expects features of shape {self.feature_shape} "
                             f"but its descriptor metadata gives "
                             f"{tuple(self.descriptor.feature_shape)}")
        self.mc = self._mc_dropout(session, metadata, path)
        default = self.mc.passes if self.mc else 1
        self.mc_passes = default if mc_passes is None else int(mc_passes)
        if self.mc_passes < 1 or (self.mc is None and self.mc_passes > 1):
            raise ModelError(f"{path}: mc_passes={self.mc_passes}: " + (
                "give T >= 1" if self.mc_passes < 1 else "the model has no dropout mask input "
                "(export it with insitu.training.export.export_onnx from a net with dropout, "
                "e.g. `insitu train mc`)"))
        self.mi_threshold = self.mc.mi_threshold if self.mc else None
        try:
            self.novelty_threshold = novelty_threshold(session, metadata, path)
        except ValueError as exc:
            raise ModelError(str(exc)) from None
        try:
            self.consensus = None if CONSENSUS_METADATA not in metadata else \
                Consensus.from_metadata(metadata[CONSENSUS_METADATA])
        except (TypeError, ValueError) as exc:
            raise ModelError(f"{path}: bad metadata insitu.consensus ({exc})") from None
        self._buffers: dict[str, np.ndarray] = {}
        self.screen: Classifier | None = None
        self.screen_rule: ScreenRule | None = None
        # atoms the screen settled, atoms it saw: running totals since load (benchmarks)
        self.screen_counts = np.zeros(2, np.int64)
        self.head = None  # the graph path checks the exposed head, if any
        self.head = load_linear_head(self)

    @staticmethod
    def _mc_dropout(session, metadata: dict, path) -> McDropout | None:
        """The model's MC-dropout head (metadata ``mc_dropout`` + graph input and output)."""
        if "mc_dropout" not in metadata:
            return None
        try:
            mc = McDropout.from_metadata(metadata["mc_dropout"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"{path}: bad metadata insitu.mc_dropout ({exc})") from None
        masks = {i.name: i.shape for i in session.get_overridable_initializers()}
        outputs = [o.name for o in session.get_outputs()]
        if masks.get(MASK_INPUT, [None])[-1] != mc.n_units or PASS_OUTPUT not in outputs:
            raise ModelError(f"{path}: metadata insitu.mc_dropout describes {mc.n_units} "
                             f"dropout units but the graph has no matching '{MASK_INPUT}' "
                             f"input and '{PASS_OUTPUT}' output; re-export the model")
        return mc

    @classmethod
    def load(cls, path, n_threads: int = 1, batch_size: int = DEFAULT_BATCH_SIZE,
             mc_passes: int | None = None, screen: bool = True) -> Classifier:
        """Load an ``.onnx`` model written by :func:`insitu.training.export.export_onnx`.

        ``n_threads`` is onnxruntime's intra-op thread count (1 by default: one per MPI rank).
        ``mc_passes``: stochastic passes T of MC dropout (None: the model's default; 1:
        dropout off, the deterministic network). ``screen``: a model whose metadata names a
        screening network (:mod:`.screen`) runs it first and its own network only on the
        atoms the screen is not sure of; False: its own network on every atom. Raises
        FileNotFoundError for a missing file and :class:`ModelError` (a ValueError) for a
        corrupt or non-insitu file or a missing or altered screen.
        """
        session = open_session(path, n_threads)
        metadata = read_metadata(session, path)
        clf = cls(session, metadata, Path(path), file_sha256(path), batch_size, n_threads,
                  mc_passes)
        if screen and SCREEN_METADATA in metadata:
            clf.screen, clf.screen_rule = load_screen(clf)
        return clf

    # --- inference -------------------------------------------------------------------------
    def predict_proba(self, features: np.ndarray,
                      novelty_out: np.ndarray | None = None) -> np.ndarray:
        """Class probabilities (n, K) float32 of per-atom features (n, *feature_shape),
        one deterministic pass, run in batches of ``batch_size`` (through the screen
        first, if any); the novelty (n,) goes to ``novelty_out`` when given (a model with
        the novelty output; NaN for atoms the screen settled)."""
        if self.screen is not None:
            return screened_predictions(self, features, None, 0, 1, novelty_out)[0]
        return self.network_proba(features, novelty_out)

    def network_proba(self, features: np.ndarray,
                      novelty_out: np.ndarray | None = None) -> np.ndarray:
        """:meth:`predict_proba` of this model's own network (no screen)."""
        x = np.asarray(features)
        if x.shape[1:] != self.feature_shape:
            raise ValueError(f"features of shape {x.shape[1:]} per atom, the model "
                             f"{self.path.name} expects {self.feature_shape}")
        n = len(x)
        out = np.empty((n, len(self.classes)), dtype=np.float32)
        fetch = self._fetch(self.output_name, novelty_out)
        rows = self._rows_per_call()
        for s in range(0, n, rows):
            chunk = np.ascontiguousarray(x[s:s + rows], dtype=np.float32)
            res = self.session.run(fetch, {self.input_name: chunk})
            out[s:s + len(chunk)] = res[0]
            if len(res) > 1:
                novelty_out[s:s + len(chunk)] = res[1]
        return out

    def _fetch(self, output: str, novelty_out) -> list:
        return [output] if novelty_out is None or self.novelty_threshold is None \
            else [output, NOVELTY_OUTPUT]

    def predict_mc(self, features: np.ndarray, ids, step: int = 0,
                   n_passes: int | None = None, novelty_out: np.ndarray | None = None
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """MC dropout on features (n, *feature_shape) of the atoms with global ``ids`` at
        MD ``step``: (mean probabilities (n, K) float32, ARISE Supp. Eq. 4; mutual
        information (n,) and predictive entropy (n,) in bits, Supp. Eq. 5). The trunk runs
        once per atom and the head once per (atom, pass), in one onnxruntime call per
        batch; the masks depend on (model seed, id, step, pass) only. The novelty (n,)
        goes to ``novelty_out`` when given. With a screen (:mod:`.screen`) the atoms it
        is sure of keep its results (novelty NaN) and the others get the model's."""
        t = self.mc_passes if n_passes is None else int(n_passes)
        if self.screen is not None:
            return screened_predictions(self, features, ids, step, t, novelty_out)
        return self.network_mc(features, ids, step, t, novelty_out)

    def network_mc(self, features: np.ndarray, ids, step: int, t: int,
                   novelty_out: np.ndarray | None) -> tuple:
        """:meth:`predict_mc` of this model's own network (no screen) with ``t`` passes."""
        x = np.asarray(features)
        n = len(x)
        if self.mc is None or t < 2:
            p = self.network_proba(x, novelty_out)
            return p, np.zeros(n), entropy_bits(p)
        ids = np.asarray(ids, np.int64).reshape(n)
        if self.head is not None:  # the head by one numba kernel (:mod:`.mc_head`)
            return self.head.predict(self, x, ids, step, t, novelty_out)
        rows = max(1, min(self._rows_per_call(), MC_MASK_VALUES // (t * self.mc.n_units)))
        passes = self._buffer("passes", (n, t, len(self.classes)))
        buffer = self._buffer("masks", (min(rows, n), t, self.mc.n_units))
        fetch = self._fetch(PASS_OUTPUT, novelty_out)
        for s in range(0, n, rows):
            chunk = np.ascontiguousarray(x[s:s + rows], dtype=np.float32)
            masks = self.mc.masks(ids[s:s + rows], step, t, buffer[:len(chunk)])
            res = self.session.run(fetch, {self.input_name: chunk, MASK_INPUT: masks})
            passes[s:s + len(chunk)] = res[0]
            if len(res) > 1:
                novelty_out[s:s + len(chunk)] = res[1]
        return pass_statistics(passes)

    def _rows_per_call(self) -> int:
        """Atoms per onnxruntime call: the batch size, or fewer for large features."""
        return max(1, min(self.batch_size, INPUT_VALUES // int(np.prod(self.feature_shape))))

    def _buffer(self, name: str, shape: tuple) -> np.ndarray:
        """A float32 work array of ``shape`` kept between calls (the in-situ path asks for
        the same shapes at every step: a fresh array would be faulted in page by page)."""
        size = int(np.prod(shape))
        cached = self._buffers.get(name)
        if cached is None or cached.size < size:
            cached = self._buffers[name] = np.empty(size, np.float32)
        return cached[:size].reshape(shape)

    def check_types(self, types) -> None:
        """Raise ValueError if the atoms have types the model does not know about."""
        if not self.atom_types:
            return
        known = {int(k) for k in self.atom_types if str(k).isdigit()}
        if not known:
            return
        unknown = sorted(set(present_types(types).tolist()) - known)
        if unknown:
            raise ValueError(f"atom types {unknown} are not in the model {self.path.name} "
                             f"(trained with types {self.atom_types})")

    @property
    def required_cutoff(self) -> float:
        """Radius around a centre inside which every atom must be present when all atoms
        are classified here (a frame, an open point set): the descriptor's, plus the
        consensus radius if any (the consensus reads its neighbours' own probabilities)."""
        r = float(self.descriptor.required_cutoff)
        return self.consensus.required_cutoff(r) if self.consensus else r

    @property
    def exchange_cutoff(self) -> float:
        """The same when what the ghost atoms' owners computed comes from them
        (``classify(exchange=...)``, in situ: probabilities, and q_lm for q-bar): the
        larger of the descriptor's :attr:`~insitu.descriptors.Descriptor.exchange_cutoff`
        and the consensus radius."""
        r = float(self.descriptor.exchange_cutoff)
        return max(r, self.consensus.cutoff_angstrom) if self.consensus else r

    def classify(self, system, threshold: float | None = None,
                 neighbors: NeighborQuery | None = None,
                 chunk_size: int | None = None,
                 step: int | None = None, exchange=None) -> ClassificationResult:
        """Classify every centre of ``system``: an :class:`insitu.Frame` or an
        :class:`ase.Atoms` (all its atoms; ASE symbols map to the model's atom types) or
        :class:`insitu.locality.Points` (the first ``n_centers``, e.g. a rank's local atoms
        among local + ghost). ``neighbors`` may be a query shared with other analyses.
        ``step``: the MD step seeding the dropout masks (default the frame's step, or 0).
        A model with a consensus rule (:mod:`.consensus`) labels each atom from the mean
        probabilities of its neighbourhood; ``own_probabilities`` keeps its own. The
        ghost atoms' probabilities that needs (and their q_lm, for q-bar) are computed
        here (points to :attr:`required_cutoff`), or with ``exchange`` (in situ,
        :class:`insitu.coupling.halo.Halo`; collective; points to :attr:`exchange_cutoff`)
        received from the ranks that own them; a ghost the exchange misses is left out of
        its neighbours' means (an atom whose q-bar reads it is not described)."""
        system = as_frame(system, self)
        points = as_points(system, self.required_cutoff) if neighbors is None \
            else neighbors.points
        self.check_types(points.types[:points.n_centers])
        step = int(step if step is not None else getattr(system, "step", None) or 0)
        own = None
        if self.consensus is None:
            proba, mi, novelty, undescribed, timings = self._evaluate(points, neighbors, step,
                                                                      chunk_size, exchange)
        else:
            proba, own, mi, novelty, undescribed, timings = self._with_consensus(
                points, neighbors, step, chunk_size, exchange)
        thr = self.confidence_threshold if threshold is None else float(threshold)
        result = ClassificationResult.from_probabilities(
            self.classes, proba, thr, timings, undescribed, mi,
            self.mi_threshold if self.mc_passes > 1 else None, self.mc_passes, novelty,
            self.novelty_threshold)
        result.own_probabilities = own
        return result

    def _with_consensus(self, points, neighbors, step: int, chunk_size, exchange) -> tuple:
        """(consensus probabilities, own probabilities, MI, novelty, undescribed, timings)
        of the centres of ``points``."""
        n = points.n_centers
        t0 = time.perf_counter()
        t_search = 0.0
        if neighbors is None and exchange is not None:
            neighbors = self._consensus_query(points)
            if neighbors is not None:  # the shared search, timed with the descriptor's
                neighbors.cells.all_centers()
                t_search = time.perf_counter() - t0
        t0 = time.perf_counter()
        plan = plan_consensus(points, self.consensus,
                              None if neighbors is None else neighbors.cells)
        t_consensus = time.perf_counter() - t0
        if exchange is None:
            evaluated = self._evaluate(plan.points, None, step, chunk_size)
        else:  # own atoms (through the shared search), then the ghosts' from their owners
            proba, mi, novelty, undescribed, timings = self._evaluate(points, neighbors, step,
                                                                      chunk_size, exchange)
            t0 = time.perf_counter()
            found, ghost_p, ghost_described = exchange(
                plan.ghost_ids, plan.source.positions[plan.extra], points.centre_index, proba,
                ~undescribed)
            # a ghost not received (it moved farther than the halo reaches) is left out
            evaluated = (np.concatenate([proba, ghost_p]), mi, novelty,
                         np.concatenate([undescribed, ~(ghost_described & found)]), timings)
            t_consensus += time.perf_counter() - t0
        proba, mi, novelty, undescribed, timings = evaluated
        t0 = time.perf_counter()
        mean, _ = consensus_mean(proba, ~undescribed, plan.offsets, plan.members)
        timings = dict(timings, descriptor=timings["descriptor"] + t_search,
                       consensus=t_consensus + time.perf_counter() - t0)
        return (mean, proba[:n], mi[:n], None if novelty is None else novelty[:n],
                undescribed[:n], timings)

    def _consensus_query(self, points) -> NeighborQuery | None:
        """One search of the centres' N nearest for a descriptor that keeps its N nearest
        (Steinhardt) and the consensus plan (in situ both read the rank's own atoms), at
        the larger of their radii; None for a descriptor reading all neighbours within its
        radius (a Neighbors Map: keeping all its lists would cost more memory than the
        consensus search it spares)."""
        k = self.descriptor.max_neighbors
        if k is None:
            return None
        radius = max(float(self.descriptor.search_radius), self.consensus.cutoff_angstrom)
        return shared_query(points, radius,
                            max_neighbors=max(int(k), self.consensus.n_neighbors))

    def _evaluate(self, points, neighbors, step: int, chunk_size: int | None,
                  exchange=None) -> tuple:
        """(probabilities, MI, novelty or None, undescribed, timings) of every centre of
        ``points``: descriptor chunk by chunk, each through onnxruntime before the next
        (with an ``exchange``, collective, the descriptor runs without centres too)."""
        n = points.n_centers
        proba = np.empty((n, len(self.classes)), dtype=np.float32)
        mi = np.zeros(n)
        novelty = None if self.novelty_threshold is None else np.zeros(n, np.float32)
        undescribed = np.zeros(n, bool)
        t_desc = t_inf = 0.0
        t0 = time.perf_counter()
        if n or exchange is not None:
            # descriptor chunks of the descriptor's own size when larger than the inference
            # batch (BOO: 8192 atoms, fewer passes through the per-chunk glue); inference
            # runs in batches of batch_size within them
            chunk = int(chunk_size or max(self.batch_size, self.descriptor.chunk_size))
            chunks = self.descriptor.iter_compute(points, neighbors, chunk, True, exchange)
            for start, stop, features in chunks:
                t1 = time.perf_counter()
                t_desc += t1 - t0
                bad = ~described_mask(features)
                if bad.any():  # NaN marks an environment the descriptor cannot describe
                    features = np.where(bad.reshape((-1,) + (1,) * (features.ndim - 1)),
                                        0, features)
                    undescribed[start:stop] = bad
                proba[start:stop], mi[start:stop], _ = self.predict_mc(
                    features, points.ids[start:stop], step,
                    novelty_out=None if novelty is None else novelty[start:stop])
                t0 = time.perf_counter()
                t_inf += t0 - t1
            t_desc += time.perf_counter() - t0
        return proba, mi, novelty, undescribed, {"descriptor": t_desc, "inference": t_inf}

    def summary(self) -> str:
        d = self.metadata.get("descriptor", {})
        acc = self.metadata.get("validation_accuracy")
        return (f"{self.path.name}: classes {self.classes}, descriptor {d.get('kind')}, "
                f"threshold {self.confidence_threshold}, validation accuracy {acc}"
                + (f", MC dropout T={self.mc_passes}, MI threshold {self.mi_threshold:.4g} bits"
                   if self.mc else ""))

    def __repr__(self) -> str:
        return f"Classifier({str(self.path)!r}, classes={self.classes})"
