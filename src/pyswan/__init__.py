"""pyswan: Libreswan's pluto, whack and ipsec auto, in Python."""

__version__ = "0.1.0"
#: What `--version` prints, in Libreswan's shape.
VERSION_STRING = f"pyswan {__version__} (Libreswan 5.x compatible)"
