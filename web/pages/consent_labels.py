"""Why a person may not receive marketing, in the staff member's language: the one label table for the reason
codes of ``crm_inbox.consent.policy.REASONS`` and the campaign audience's own two (``no_address``,
``no_postal_address``). The core answers codes; the consent pages and the campaign pages show these.

``REASON_LABELS`` is the sentence (the proof, the contact's consent panel, a title); ``REASON_SHORT`` a few words
for a summary line ("left out: 12 opted out, 3 bouncing").
"""

from __future__ import annotations

from flask_babel import gettext as _

from web.i18n import N_

REASON_LABELS: dict[str, str] = {
    "erased": N_("the address belonged to a person whose data was erased"),
    "opted_out": N_("the person opted out (objected) for this channel"),
    "bouncing": N_("the e-mail address bounces"),
    "pending": N_("the double opt-in is not confirmed yet"),
    "no_consent": N_("no consent for this channel"),
    "no_notice": N_("a customer, but the notice of the right to object (§ 7(3) UWG) is not recorded"),
    "no_purchase": N_("recorded as an existing customer, but there is no order"),
    "consumer_phone": N_("phone marketing to a consumer needs their express consent"),
    "no_address": N_("no working e-mail address"),
    "no_postal_address": N_("no postal address for a letter"),
}
REASON_SHORT: dict[str, str] = {
    "erased": N_("erased"), "opted_out": N_("opted out"), "bouncing": N_("bouncing"),
    "pending": N_("double opt-in not confirmed"), "no_consent": N_("no consent"),
    "no_notice": N_("no notice of the right to object"), "no_purchase": N_("no order"),
    "consumer_phone": N_("consumer (phone)"), "no_address": N_("no e-mail address"),
    "no_postal_address": N_("no postal address"),
}


def reason_label(code: str | None) -> str:
    """The sentence for a reason code, translated; an unknown code as it is."""
    return _(REASON_LABELS[code]) if code in REASON_LABELS else (code or "")


def reason_short(code: str | None) -> str:
    """The few words for a reason code, translated; an unknown code as it is."""
    return _(REASON_SHORT[code]) if code in REASON_SHORT else (code or "")
