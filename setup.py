"""Package layout that pyproject.toml cannot express alone.

Every package under ``forkman/`` is found automatically; the top-level
``vendor-templates/`` folder (the files forkman renders into a consumer's
repository) is installed as the ``forkman.templates`` package, so that
``importlib.resources.files("forkman.templates")`` finds it in a wheel and in
an editable install alike. Everything else lives in pyproject.toml.
"""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["forkman", "forkman.*"]), "forkman.templates"],
    package_dir={"forkman.templates": "vendor-templates"},
)
