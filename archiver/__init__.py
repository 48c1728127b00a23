"""archiver: keeps compliance evidence of mobile and web test sessions."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("archiver")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+local"
