"""Consent per person and channel: the append-only ledger, the rules of § 7 UWG and the GDPR for who may be
written to, double opt-in and one-click opt-out tokens, and the printable proof."""
