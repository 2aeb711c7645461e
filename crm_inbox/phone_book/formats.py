"""A phone book in the formats desk phones and routers fetch, from the entries alone (names and numbers).

Followed: Yealink's remote phone book (``<YealinkIPPhoneDirectory>``, up to three ``<Telephone>`` per entry;
Yealink SIP-T2/T4/T5 administrator guides); Grandstream's XML downloadable phone book for GXP16xx/17xx/21xx
(``<AddressBook><Contact>``, ``<Phone type="Work|Home|Mobile">`` with ``<phonenumber>`` and ``<accountindex>``,
1 = the first account); Snom's remote XML directory (firmware 10.1.178+, the ``<tbook version="2.0">`` format of
the local directory, which the phone downloads and uses to name callers; Snom service wiki "Remote XML
Directory"); the FRITZ!Box phone-book export/import format (``<phonebooks><phonebook><contact>`` with
``<person><realName>`` and ``<telephony><number type="home|mobile|work" prio="1">``); vCard 3.0 (RFC 2426) with
FN, N and TEL only. Numbers are E.164 ("+4989…"): phones and the FRITZ!Box dial them as they are.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence

from crm_inbox import vcards
from crm_inbox.phone_book.queries import Entry

FORMATS = {"yealink.xml": "application/xml", "grandstream.xml": "application/xml", "snom.xml": "application/xml",
           "fritzbox.xml": "application/xml", "contacts.vcf": "text/vcard"}
YEALINK_MAX_NUMBERS = 3  # the remote phone book shows three numbers per entry
# XML 1.0 cannot carry these at all, escaped or not.
_NOT_XML = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_GRANDSTREAM_TYPES = {"work": "Work", "mobile": "Mobile", "home": "Home"}
_SNOM_TYPES = {"work": "business", "mobile": "mobile", "home": "home"}


def _text(parent: ET.Element, tag: str, text: str, **attrs: str) -> ET.Element:
    element = ET.SubElement(parent, tag, attrs)
    element.text = _NOT_XML.sub("", text)
    return element


def _document(root: ET.Element) -> bytes:
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True) + b"\n"


def yealink_xml(entries: Sequence[Entry]) -> bytes:
    root = ET.Element("YealinkIPPhoneDirectory")
    for entry in entries:
        item = ET.SubElement(root, "DirectoryEntry")
        _text(item, "Name", entry.display)
        for number in entry.numbers[:YEALINK_MAX_NUMBERS]:
            _text(item, "Telephone", number.number)
    return _document(root)


def grandstream_xml(entries: Sequence[Entry]) -> bytes:
    root = ET.Element("AddressBook")
    _text(root, "version", "1")
    for entry in entries:
        contact = ET.SubElement(root, "Contact")
        _text(contact, "LastName", entry.family or entry.name)
        _text(contact, "FirstName", entry.given)
        for number in entry.numbers:
            phone = ET.SubElement(contact, "Phone", {"type": _GRANDSTREAM_TYPES[number.kind]})
            _text(phone, "phonenumber", number.number)
            _text(phone, "accountindex", "1")
    return _document(root)


def snom_xml(entries: Sequence[Entry]) -> bytes:
    # complete="true": the download replaces the phone's previous copy, so removed contacts disappear too.
    root = ET.Element("tbook", {"complete": "true", "e": "2", "version": "2.0"})
    for entry in entries:
        contact = ET.SubElement(root, "contact", {"fav": "false", "vip": "false", "blocked": "false"})
        _text(contact, "first_name", entry.given)
        _text(contact, "last_name", entry.family or entry.name)
        if entry.company:
            _text(contact, "organization", entry.company)
        numbers = ET.SubElement(contact, "numbers")
        for number in entry.numbers:
            ET.SubElement(numbers, "number", {"no": _NOT_XML.sub("", number.number),
                                              "type": _SNOM_TYPES[number.kind], "outgoing_id": "0"})
    return _document(root)


def fritzbox_xml(entries: Sequence[Entry], name: str = "CRM") -> bytes:
    root = ET.Element("phonebooks")
    book = ET.SubElement(root, "phonebook", {"name": name})
    for entry in entries:
        contact = ET.SubElement(book, "contact")
        _text(contact, "category", "0")
        person = ET.SubElement(contact, "person")
        _text(person, "realName", entry.display)
        telephony = ET.SubElement(contact, "telephony")
        for i, number in enumerate(entry.numbers):
            _text(telephony, "number", number.number, type=number.kind, prio="1" if i == 0 else "0", id=str(i))
    return _document(root)


def phone_book_vcard(entries: Sequence[Entry]) -> bytes:
    types = {"work": "WORK", "mobile": "CELL", "home": "HOME"}
    cards = [vcards.card([("FN", vcards.escape(entry.display)),
                          ("N", vcards.structured([entry.family or entry.name, entry.given, "", "", ""])),
                          *((f"TEL;TYPE={types[n.kind]}", vcards.escape(n.number)) for n in entry.numbers)])
             for entry in entries]
    return "".join(cards).encode("utf-8")


def phone_book(entries: Sequence[Entry], filename: str) -> bytes:
    """The phone book as ``filename`` (one of FORMATS) asks for it."""
    writers = {"yealink.xml": yealink_xml, "grandstream.xml": grandstream_xml, "snom.xml": snom_xml,
               "fritzbox.xml": fritzbox_xml, "contacts.vcf": phone_book_vcard}
    return writers[filename](entries)
