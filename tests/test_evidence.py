"""Evidence never carries private key bytes."""

from __future__ import annotations

from openshell_acceptance import evidence

KEY = (
    "-----BEGIN PRIVATE KEY" + "-----\n"
    "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg\n"
    "-----END PRIVATE KEY" + "-----\n"
)


def test_a_complete_key_block_is_replaced():
    redacted = evidence.redact(f"before\n{KEY}after")

    assert "MIGHAgEAMBMG" not in redacted
    assert not evidence.holds_key_material(redacted)
    assert redacted.startswith("before\n") and redacted.endswith("after")


def test_a_key_block_cut_short_is_replaced_to_the_end():
    redacted = evidence.redact("log: -----BEGIN EC PRIVATE KEY" + "-----\nMHcCAQEEI")

    assert "MHcCAQEEI" not in redacted
    assert not evidence.holds_key_material(redacted)


def test_certificates_pass_through():
    pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----"

    assert evidence.redact(pem) == pem


def test_every_constructor_redacts():
    assert not evidence.holds_key_material(evidence.text("t", KEY).text)
    assert not evidence.holds_key_material(evidence.table("t", [("k", KEY)]).text)
    assert not evidence.holds_key_material(evidence.mapping("t", {"k": KEY}).text)
