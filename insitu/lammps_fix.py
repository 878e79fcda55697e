"""Former home of the LAMMPS bridge, kept so that input scripts written for insitu 0.1
(``here "from insitu.lammps_fix import insitu_attach"``) keep working."""

from .coupling import insitu_attach

__all__ = ["insitu_attach"]
