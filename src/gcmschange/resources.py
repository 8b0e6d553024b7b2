"""What gcmschange ships inside its package, found the same way from a checkout or a wheel.

The JSON schemas, the reference estate (a whole GitOps repository, lab keys included) and the
notice and site templates are package data: nothing is read from beside the package, so an
installed gcmschange works wherever it runs, and a repository under judgement cannot replace
the schemas it is judged by.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from gcmschange.errors import InvalidInputError


def package_dir(package: str) -> Path:
    """The folder of an installed package's data (wheels and checkouts alike unpack to files)."""
    found = resources.files(package)
    if not isinstance(found, Path):
        # A zip import has no real folder for ssh-keygen or Ansible to read.
        raise InvalidInputError(f"{package}: installed as a zip archive; install it unpacked")
    return found


def schemas_dir() -> Path:
    return package_dir("gcmschange") / "schemas"


def schema(name: str) -> Path:
    """`schema("policy")` is the shipped `policy.schema.json`."""
    return schemas_dir() / f"{name}.schema.json"


def reference_estate() -> Path:
    """The reference estate: the repository `lab workspace` copies, the demo's and tests' base."""
    return package_dir("gcmschange") / "reference"
