from dkp_tui.version import __version__

__all__ = ["__version__"]
