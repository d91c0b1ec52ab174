"""genlab: the library behind the course *Generative Models for Images and Video*.

Notebooks import what they teach from here (DESIGN.md: the library is the source of truth). Start with
:func:`genlab.config.setup` and :func:`genlab.record.record`.
"""
from genlab.config import Run, setup
from genlab.record import record

__version__ = "0.1.0"
__all__ = ["Run", "setup", "record", "__version__"]
