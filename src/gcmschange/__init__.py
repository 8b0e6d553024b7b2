"""gcmschange: one road for every change to the case management platform."""

__version__ = "0.1.0"
