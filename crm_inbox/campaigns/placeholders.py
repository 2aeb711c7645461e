"""The campaign's texts as templates: the placeholders a recipient fills in, rendered in a sandbox."""
# OWNER: helper "core" (campaign service). Interface in /tmp/briefs/interface.md.
