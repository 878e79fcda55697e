"""The LAMMPS coupling (stages 1 and 5: LAMMPS arrays in, reductions back into LAMMPS).

``insitu_attach`` is the entry point for input scripts::

    python insitu_attach input 4 SELF nm ${model} every=10 format psss &
        here "from insitu.coupling import insitu_attach"
"""

from .bridge import InsituAnalysis, close_all, insitu_attach

__all__ = ["insitu_attach", "InsituAnalysis", "close_all"]
