"""The signature of mail staff write in the CRM: the writer's name, our company's name and the details German law
requires in business letters, which include business mail (§ 35a GmbHG, § 37a HGB, § 125a HGB): legal form and
seat, register court and number, managing directors.

``business_details`` lives here, below the sales package, because correspondence may not import sales (the layer
contract in pyproject.toml) while sales (the quote and order PDFs' footer) may import correspondence.
"""

from __future__ import annotations

from crm_inbox.config import CompanySettings
from crm_inbox.text import single_line

_LABELS = {
    "de": {"seat": "Sitz der Gesellschaft", "register": "Registergericht", "directors": "Geschäftsführer",
           "vat_id": "USt-IdNr."},
    "en": {"seat": "Registered office", "register": "Register court", "directors": "Managing directors",
           "vat_id": "VAT ID"},
}


def business_details(company: CompanySettings, language: str) -> list[str]:
    """The mandatory details as lines (empty settings are left out): "Sitz der Gesellschaft: München",
    "Registergericht: Amtsgericht München, HRB 123456", "Geschäftsführer: Max Muster", "USt-IdNr.: DE123…"."""
    labels = _LABELS.get(language, _LABELS["en"])
    register = ", ".join(part for part in (company.register_court, company.register_number) if part.strip())
    lines = [(labels["seat"], company.seat), (labels["register"], register),
             (labels["directors"], company.managing_directors), (labels["vat_id"], company.vat_id)]
    return [f"{label}: {single_line(value)}" for label, value in lines if value.strip()]


def signature(writer: str, company: CompanySettings, language: str) -> str:
    """The block below the text, after the standard "-- " separator (mail clients fold it away in replies)."""
    lines = [single_line(writer)]
    if company.name.strip():
        lines.append(single_line(company.name))
    lines += business_details(company, language)
    return "-- \n" + "\n".join(line for line in lines if line)
