"""Moved to :mod:`planrun.resume.load`; this name stays importable."""

from .resume.load import LoadedResume, load_resume

__all__ = ["LoadedResume", "load_resume"]
