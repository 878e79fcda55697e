"""insitu: learned per-atom structural analysis inside running LAMMPS jobs."""

__version__ = "0.1.0"
