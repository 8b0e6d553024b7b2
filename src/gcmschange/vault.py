"""Ansible Vault: reading encrypted values and files, and never letting a decrypted one out.

Release managers keep their secrets as Ansible does: whole files encrypted with
`ansible-vault encrypt`, or single `!vault |` values in group_vars, host_vars and change
variables. gcmschange decrypts them itself (the 1.1/1.2 format: PBKDF2-SHA256, AES-256-CTR,
HMAC-SHA256), because importing ansible-core is not allowed (GPL: it runs as a program) and a
subprocess per value would cost half a second each.

Every decrypted text is remembered for the life of the process (`revealed`), and the masking
of every output reads that register: a value decrypted anywhere is masked everywhere this
process writes, whatever path it took to get there. A per-call list would leave one path
forgotten; this is a register on purpose.

The password comes from the operator, never from the branch: `--vault-password-file` (or
`GCMS_VAULT_PASSWORD_FILE`, or Ansible's `ANSIBLE_VAULT_PASSWORD_FILE`), or the password itself
in `GCMS_VAULT_PASSWORD` (a masked CI variable). A password file inside the repository is
refused: it would be the branch's, and an executable one would be the branch's code.
"""

from __future__ import annotations

import binascii
import hmac
import os
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from hashlib import sha256
from pathlib import Path
from typing import Any

from gcmschange import proc
from gcmschange.errors import InvalidInputError, UsageError
from gcmschange.paths import memory_folder
from gcmschange.yamlsafe import VaultText

__all__ = ["VaultText", "decrypt", "is_vaulted", "password", "password_file", "reveal", "revealed"]

HEADER = "$ANSIBLE_VAULT;"
FROM_ENV = "GCMS_VAULT_PASSWORD"  # the password itself, e.g. a masked CI variable
PASSWORD_FILE_ENVS = ("GCMS_VAULT_PASSWORD_FILE", "ANSIBLE_VAULT_PASSWORD_FILE")
MIN_MASKED = 4  # shorter plaintexts (a port, "yes") would mask every digit of every output
_ITERATIONS = 10000  # ansible-vault's, fixed by the format
_revealed: set[str] = set()
_opened: dict[str, str] = {}  # ciphertext -> plaintext: PBKDF2 costs milliseconds a value
_repositories: set[Path] = set()  # checkouts whose files may never be the password
_lock = threading.Lock()


def is_vaulted(data: bytes | str) -> bool:
    head = data.lstrip()[: len(HEADER)]
    return (head.decode("ascii", "replace") if isinstance(head, bytes) else head) == HEADER


def revealed() -> frozenset[str]:
    """Every value decrypted in this process so far (the masking register)."""
    with _lock:
        return frozenset(_revealed)


def reveal(text: str) -> None:
    """Add a plaintext to the register, so every output masks it (too short ones aside)."""
    if len(text) >= MIN_MASKED:
        with _lock:
            _revealed.add(text)


def holds_secret(text: str) -> bool:
    """Whether `text` contains a value decrypted in this process."""
    return any(value in text for value in revealed())


def opened(value: Any, root: Path | None = None) -> Any:
    """`value` with every `VaultText` in it decrypted (for rendering, in memory only)."""
    if isinstance(value, VaultText):
        return decrypt(value, "a !vault value", root)
    if isinstance(value, Mapping):
        items = {k: opened(v, root) for k, v in value.items()}
        same = all(items[k] is v for k, v in value.items())
        return value if same else items  # most values hold no vault text: no copies then
    if isinstance(value, list | tuple):
        found = [opened(v, root) for v in value]
        return value if all(a is b for a, b in zip(found, value, strict=True)) else found
    return value


def _repository_of(root: Path) -> Path:
    """The checkout `root` belongs to (a sealed copy lives inside its repository's)."""
    here = root.resolve()
    return next((p for p in (here, *here.parents) if (p / ".git").exists()), here)


def guard_repository(root: Path) -> None:
    """Refuse a password file inside `root`'s repository from now on, whatever root a later
    call names (an exported base commit in /tmp has no .git to find the checkout by)."""
    with _lock:
        _repositories.add(_repository_of(root))


def _password_from_file(path: Path, root: Path | None) -> bytes:
    real = path.expanduser().resolve()
    with _lock:
        guarded = set(_repositories)
    if root is not None:
        guarded.add(_repository_of(root))
    if any(real.is_relative_to(repository) for repository in guarded):
        raise UsageError(
            f"{path}: vault password file inside the repository: keep it outside, in a file "
            "only you can read, or pass it in GCMS_VAULT_PASSWORD"
        )
    if not real.is_file():
        raise UsageError(f"{path}: vault password file not found")
    if os.access(real, os.X_OK):  # Ansible's convention: an executable prints the password
        out = proc.run([str(real)], timeout=60).stdout
        return out.rstrip("\r\n").encode("utf-8")
    return real.read_bytes().rstrip(b"\r\n")


def given() -> bool:
    """Whether the operator gave a vault password, without reading it (an executable password
    file is run only when the password is needed)."""
    return any(os.environ.get(name) for name in (FROM_ENV, *PASSWORD_FILE_ENVS))


def password(root: Path | None = None) -> bytes | None:
    """The operator's vault password, if one was given (None: no vault in use)."""
    direct = os.environ.get(FROM_ENV)
    if direct:
        return direct.encode("utf-8")
    for name in PASSWORD_FILE_ENVS:
        value = os.environ.get(name)
        if value:
            return _password_from_file(Path(value), root)
    return None


@contextmanager
def password_file(root: Path | None = None) -> Iterator[Path | None]:
    """A file holding the password, for Ansible's `--vault-password-file`, removed after.

    Written to memory-backed storage where there is some, readable by this user only, and
    outside the run's folders, so no artifact or evidence bundle can pick it up.
    """
    secret = password(root)
    if secret is None:
        yield None
        return
    with memory_folder("gcms-vault-") as folder:
        path = folder / "password"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(secret)
        yield path


def _parts(vaulttext: str, where: str) -> tuple[bytes, bytes, bytes]:
    lines = vaulttext.strip().splitlines()
    header = lines[0].strip().split(";") if lines else []
    if len(header) < 3 or header[0] != "$ANSIBLE_VAULT" or header[1] not in {"1.1", "1.2"}:
        raise InvalidInputError(f"{where}: not an Ansible vault text (1.1 or 1.2 expected)")
    if header[2].strip() != "AES256":
        raise InvalidInputError(f"{where}: vault cipher {header[2]!r} is not supported")
    try:
        inner = binascii.unhexlify("".join(line.strip() for line in lines[1:]))
        salt, mac, body = inner.split(b"\n", 2)
        return binascii.unhexlify(salt), binascii.unhexlify(mac), binascii.unhexlify(body)
    except (binascii.Error, ValueError) as exc:
        raise InvalidInputError(f"{where}: damaged vault text ({exc})") from exc


def decrypt(vaulttext: str, where: str, root: Path | None = None) -> str:
    """The plaintext of one vault text; registered for masking before it is returned."""
    key = vaulttext.strip()
    if key in _opened:
        return _opened[key]
    # Imported here: validation of thousands of changes without vault must not pay for it.
    from cryptography.hazmat.primitives import hashes, padding
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
    from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

    secret = password(root)
    if secret is None:
        raise UsageError(
            f"{where}: encrypted with Ansible Vault, and no vault password was given "
            "(--vault-password-file FILE, GCMS_VAULT_PASSWORD_FILE, ANSIBLE_VAULT_PASSWORD_FILE, "
            "or GCMS_VAULT_PASSWORD)"
        )
    salt, mac, body = _parts(vaulttext, where)
    kdf = PBKDF2HMAC(algorithm=hashes.SHA256(), length=80, salt=salt, iterations=_ITERATIONS)
    keys = kdf.derive(secret)
    if not hmac.compare_digest(hmac.new(keys[32:64], body, sha256).digest(), mac):
        raise InvalidInputError(f"{where}: vault text does not open with this password")
    decryptor = Cipher(algorithms.AES(keys[:32]), modes.CTR(keys[64:])).decryptor()
    padded = decryptor.update(body) + decryptor.finalize()
    unpadder = padding.PKCS7(128).unpadder()
    try:
        plain = (unpadder.update(padded) + unpadder.finalize()).decode("utf-8")
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInputError(f"{where}: vault text is damaged ({exc})") from exc
    reveal(plain)
    with _lock:
        _opened[key] = plain
    return plain
