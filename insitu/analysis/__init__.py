"""Analysis of in-situ logs after (or during) a run.

- :mod:`insitu.analysis.ramp_numerics`: smoothing, stages, 50 % crossings, the PE jump and
  the PE(T) slope change of a heating / quench ramp;
- :mod:`insitu.analysis.validation`: learned fractions against the energy (the papers'
  Figs. 5 and 7), ``insitu validate``;
- :mod:`insitu.analysis.plotting`: the figure of a ramp log, ``insitu plot`` (matplotlib).

Nothing is imported here, so that :mod:`insitu.io.phase_log` can use the numerics without
pulling in the validation (which reads logs) or matplotlib.
"""
