from dkp_tui.version import __version__
