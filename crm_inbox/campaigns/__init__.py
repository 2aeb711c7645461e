"""Campaigns: a mailing by e-mail or letter to a segment, only to those with a legal basis; its per-recipient
send ledger released at a set rate through the outbox; the replies, bounces, opt-outs and opportunities it
brings back; and the mail-merge letters."""
