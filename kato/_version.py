"""The one place the version (and the distribution's name) is written; pyproject.toml reads the
version from here, and everything that reports one imports it."""

__version__ = "0.1.0"
#: What pip installs (``kato`` on PyPI is an unrelated project); the package imports as ``kato``.
DISTRIBUTION = "kato-workbench"
