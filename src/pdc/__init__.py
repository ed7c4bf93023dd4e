"""pdc: distil the pseudocode reasoning of large code models into small students.

Importable core; the `pdc` command is a thin shell over these modules.
"""

__version__ = "0.1.0"
