"""SSH signatures (`ssh-keygen -Y`), the mechanism git uses for signed commits.

Everything goes through `gcmschange.proc`. Statements are passed on stdin, so nothing
unsigned or half-written ever lands next to a signature, and ssh-keygen never prompts
to overwrite a file.
"""

from __future__ import annotations

from pathlib import Path

from gcmschange import proc
from gcmschange.errors import ExternalError, InvalidInputError

NAMESPACE = "gcmschange-approval"
# ssh-keygen reports a missing key, an unprotected key file and a bad passphrase on
# stderr with exit 255; we pass its first meaningful line on.
_NOISE = ("@@@@", "Signing data on standard input")


def _reason(stderr: str) -> str:
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    useful = [ln for ln in lines if not ln.startswith(_NOISE) and "WARNING" not in ln]
    return "; ".join(useful[:2]) or "ssh-keygen failed without a message"


def public_key(private_key: Path) -> str:
    """`keytype base64` of a private key file (ssh-keygen -y), without its comment."""
    if not private_key.is_file():
        raise InvalidInputError(f"{private_key}: no such key file")
    _not_public(private_key)
    done = proc.run(["ssh-keygen", "-y", "-f", str(private_key)], check=False, input_text="")
    if done.returncode != 0:
        hint = f" (run: chmod 600 {private_key})" if "too open" in done.stderr else ""
        raise InvalidInputError(f"{private_key}: cannot read key: {_reason(done.stderr)}{hint}")
    parts = done.stdout.split()
    if len(parts) < 2:
        raise InvalidInputError(f"{private_key}: ssh-keygen printed no public key")
    return f"{parts[0]} {parts[1]}"


def sign(private_key: Path, message: str, namespace: str = NAMESPACE) -> str:
    """The armored SSH signature of `message` by `private_key`."""
    _check_private(private_key)
    done = proc.run(
        ["ssh-keygen", "-Y", "sign", "-f", str(private_key), "-n", namespace],
        check=False,
        input_text=message,
    )
    if done.returncode != 0 or "BEGIN SSH SIGNATURE" not in done.stdout:
        raise ExternalError(f"{private_key}: cannot sign: {_reason(done.stderr)}")
    return done.stdout


def _not_public(key: Path) -> None:
    """A public key given where the private one is meant: say so, not ssh-keygen's riddle."""
    try:
        with key.open("rb") as handle:
            head = handle.read(64)
    except OSError:
        return
    if head.startswith((b"ssh-", b"ecdsa-", b"sk-")):
        private = key.with_suffix("") if key.suffix == ".pub" else key
        raise InvalidInputError(
            f"{key}: a public key; --key takes your private key (for example {private})"
        )


def _check_private(private_key: Path) -> None:
    """ssh-keygen refuses a key others can read, with a warning banner: say it in one line."""
    _not_public(private_key)
    try:
        mode = private_key.stat().st_mode & 0o777
    except OSError as exc:
        raise InvalidInputError(f"{private_key}: cannot read the key: {exc.strerror}") from exc
    if mode & 0o077:
        raise InvalidInputError(
            f"{private_key}: mode {mode:04o} lets others read this private key, and ssh-keygen "
            f"refuses it: chmod 600 {private_key}"
        )


def find_principals(allowed_signers: Path, signature: Path) -> tuple[str, ...]:
    """Principals whose key in `allowed_signers` made `signature` (not a verification)."""
    done = proc.run(
        ["ssh-keygen", "-Y", "find-principals", "-f", str(allowed_signers), "-s", str(signature)],
        check=False,
        input_text="",
    )
    if done.returncode != 0:
        return ()
    return tuple(ln.strip() for ln in done.stdout.splitlines() if ln.strip())


def verify(
    allowed_signers: Path,
    principal: str,
    message: str,
    signature: Path,
    namespace: str = NAMESPACE,
) -> bool:
    """True when `signature` is `principal`'s valid signature of exactly `message`."""
    done = proc.run(
        [
            "ssh-keygen",
            "-Y",
            "verify",
            "-f",
            str(allowed_signers),
            "-I",
            principal,
            "-n",
            namespace,
            "-s",
            str(signature),
        ],
        check=False,
        input_text=message,
    )
    return done.returncode == 0
