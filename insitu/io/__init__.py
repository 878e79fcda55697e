"""Reading and writing files: LAMMPS dumps and data files, the in-situ phase log."""

from .lammps_data import read_lammps_data, write_lammps_data
from .lammps_dump import iter_lammps_dump, read_lammps_dump, write_lammps_dump

__all__ = ["read_lammps_data", "write_lammps_data", "iter_lammps_dump", "read_lammps_dump",
           "write_lammps_dump"]
