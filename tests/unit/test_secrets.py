"""Masking helpers: plain, JSON-escaped and nested values; secrets from the argument spec."""

from __future__ import annotations

import json
from pathlib import Path

from gcmschange import vault
from gcmschange.masking import MASK, mask_bytes, mask_data, mask_text, secret_values
from gcmschange.validate.load import load_change
from tests.conftest import vault_yaml


def test_mask_text_prefers_the_longest_secret() -> None:
    assert mask_text("a=abc abcdef", ["abc", "abcdef"]) == f"a={MASK} {MASK}"


def test_json_escaped_spelling_is_masked_too() -> None:
    secret = 'p"wé'
    encoded = json.dumps({"v": f"x{secret}y"}).encode()
    assert b"w\\u00e9" in encoded
    assert json.loads(mask_bytes(encoded, [secret]))["v"] == f"x{MASK}y"


def test_empty_secrets_change_nothing() -> None:
    assert mask_text("unchanged", ["", ""]) == "unchanged"


def test_mask_data_walks_and_masks_named_keys() -> None:
    data = {"canary_token": 1234, "list": ["has s3cr3t", {"deep": "s3cr3t"}], "n": 5}
    masked = mask_data(data, ["s3cr3t"], keys=["canary_token"])
    assert masked == {"canary_token": MASK, "list": [f"has {MASK}", {"deep": MASK}], "n": 5}


def test_secret_values_come_from_the_spec(estate_repo: Path) -> None:
    path = estate_repo / "changes" / "CHG-LAB-0001.yaml"
    text = path.read_text(encoding="utf-8").replace(
        "variables:\n", "variables:\n" + vault_yaml("canary_token", "zz-top-vaulted")
    )
    path.write_text(text, encoding="utf-8")
    change = load_change(estate_repo, "CHG-LAB-0001")
    assert "zz-top-vaulted" in secret_values(estate_repo, change)
    # Nothing of its own: only what the process opened anywhere (masked everywhere alike).
    other = secret_values(estate_repo, load_change(estate_repo, "CHG-LAB-0002"))
    assert other == tuple(sorted(vault.revealed()))
