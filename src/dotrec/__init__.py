"""dotrec."""
from dotrec._version import __version__
