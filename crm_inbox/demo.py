"""Believable demo data: companies, people, staff and a few months of mail, calls, tickets and notes.

Mail goes through the real core (``intake.accept`` then ``worker.process``), so the demo shows what
the CRM makes of real messages: directions, attribution, new leads from unknown senders, attachments,
support tickets, forwards the attribution rightly leaves for triage and one message that fails. Calls
come as phone-system events (``calls.apply_event``), as a webhook would bring them; notes are recorded
directly. One language per demo: German companies, people and texts, or English-speaking ones.
Everything but the login password comes from ``random.Random(seed)``, so two demo databases built at
the same moment hold the same data.
"""

from __future__ import annotations

import html as html_lib
import ipaddress
import logging
import random
import secrets
import unicodedata
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from crm_inbox.calls.service import CallEvent, apply_event
from crm_inbox.config import Settings, replace
from crm_inbox.db import unit_of_work
from crm_inbox.demo_campaigns import create_campaigns
from crm_inbox.demo_history import History, MailRoute, backdated
from crm_inbox.demo_sales import create_sales
from crm_inbox.intake.store import Envelope, accept
from crm_inbox.models import (
    Category,
    Company,
    CompanyDomain,
    CompanyPhone,
    Contact,
    ContactEmail,
    ContactPhone,
    CustomerType,
    Direction,
    Interaction,
    InteractionKind,
    Reminder,
    Role,
    Ticket,
    TicketState,
    utcnow,
)
from crm_inbox.phone import to_e164
from crm_inbox.pipeline.runner import process
from crm_inbox.staff.service import add_staff
from crm_inbox.tickets import service as tickets
from crm_inbox.tickets.inputs import TicketChanges
from crm_inbox.timeline.service import record_interaction

LANGUAGES = ("de", "en")

# --- data tables -------------------------------------------------------------------------------------

HISTORY_DAYS = 120
MAIL_THREADS = 125      # about 300 mails with the replies
UNKNOWN_SENDERS = 6     # first contact by mail: they become leads
CALLS = 80
NOTES = 30
SUPPORT_THREADS = 6     # mail to the support address: tickets new, pending and open, one solved

# (name, domain, country, area code, switchboard, industry, size, type, category, relation, tags, fields)
COMPANIES: tuple[tuple[Any, ...], ...] = (
    ("Müller Maschinenbau GmbH", "mueller-maschinenbau.de", "DE", "711", "2845", "Maschinenbau", "50-249",
     "B2B", "A", Role.CUSTOMER, ["Stammkunde", "Sondermaschinen"],
     {"Kundennummer": "K-10023", "Zahlungsziel": "30 Tage"}),
    ("Schäfer & Söhne Elektrotechnik KG", "schaefer-elektro.de", "DE", "221", "9573", "Elektrotechnik", "10-49",
     "B2B", "B", Role.CUSTOMER, ["Elektro"], {"Kundennummer": "K-10041", "Rahmenvertrag": "bis 12/2026"}),
    ("Krüger Logistik GmbH & Co. KG", "krueger-logistik.de", "DE", "40", "6688", "Logistik", "250-999",
     "B2B", "A", Role.CUSTOMER, ["Logistik", "Rahmenvertrag"], {"Kundennummer": "K-10057", "Standorte": 4}),
    ("Weißenberger Bau AG", "weissenberger-bau.de", "DE", "89", "4711", "Bauwesen", "250-999",
     "B2B", "B", Role.PROSPECT, ["Ausschreibung"], {"Quelle": "Messe BAU München"}),
    ("Fischer IT-Systemhaus GmbH", "fischer-it.de", "DE", "30", "8127", "IT-Dienstleistungen", "10-49",
     "B2B", "C", Role.SUPPLIER, ["Dienstleister", "IT"], {"Lieferantennummer": "L-2004"}),
    ("Autohaus Böhm GmbH", "autohaus-boehm.de", "DE", "341", "5520", "Autohandel", "50-249",
     "B2C", "B", Role.CUSTOMER, ["Werkstatt"], {"Kundennummer": "K-10102"}),
    ("Löwen-Apotheke am Markt", "loewen-apotheke-hannover.de", "DE", "511", "3219", "Apotheke", "1-9",
     "B2C", "C", Role.LEAD, ["Einzelhandel"], {"Quelle": "Website"}),
    ("Zimmermann Druck + Medien GmbH", "zimmermann-druck.de", "DE", "69", "7340", "Druckerei", "10-49",
     "B2B", "B", Role.CUSTOMER, ["Druck"], {"Kundennummer": "K-10118", "Zahlungsziel": "14 Tage"}),
    ("Brandt Verpackungen GmbH", "brandt-verpackungen.de", "DE", "421", "6190", "Verpackung", "50-249",
     "B2B", "A", Role.SUPPLIER, ["Lieferant", "Verpackung"], {"Lieferantennummer": "L-2011"}),
    ("Hofmann Metallbau e.K.", "hofmann-metallbau.de", "DE", "351", "4862", "Metallbau", "10-49",
     "B2B", "C", Role.PROSPECT, ["Handwerk"], {"Quelle": "Empfehlung Müller Maschinenbau"}),
    ("Kaiser Gastronomie-Service GmbH", "kaiser-gastro.de", "DE", "211", "1744", "Gastronomie", "50-249",
     "B2C", "C", Role.DEBTOR, ["Mahnstufe 2"], {"Kundennummer": "K-10077", "Offener Betrag": "4.180,40 €"}),
    ("Bäckerei Hoffmann OHG", "baeckerei-hoffmann.de", "DE", "911", "2630", "Lebensmittel", "10-49",
     "B2C", "B", Role.CUSTOMER, ["Filialbetrieb"], {"Kundennummer": "K-10130", "Filialen": 7}),
    ("Gruber Holztechnik GmbH", "gruber-holz.at", "AT", "662", "873104", "Holzverarbeitung", "50-249",
     "B2B", "B", Role.CUSTOMER, ["Österreich", "Export"], {"UID": "ATU12345678"}),
    ("Steiner Elektro GmbH", "steiner-elektro.at", "AT", "316", "482910", "Elektrotechnik", "10-49",
     "B2B", "C", Role.PROSPECT, ["Österreich"], {"Quelle": "Anfrage über Website"}),
    ("Brunner Präzisionstechnik AG", "brunner-praezision.ch", "CH", "44", "66818", "Feinmechanik", "50-249",
     "B2B", "A", Role.CUSTOMER, ["Schweiz", "Export", "Zoll"], {"Incoterms": "DAP Zürich"}),
)
# English-speaking customers: UK numbers from Ofcom's drama ranges, US ones from 555-01xx.
COMPANIES_EN: tuple[tuple[Any, ...], ...] = (
    ("Hargreaves Engineering Ltd", "hargreaves-engineering.co.uk", "GB", "114", "496", "Mechanical engineering",
     "50-249", "B2B", "A", Role.CUSTOMER, ["Key account", "Special machinery"],
     {"Customer no.": "C-10023", "Payment terms": "30 days"}),
    ("Thompson & Hale Ltd", "thompsonhale.co.uk", "GB", "20", "7946", "Industrial distribution", "50-249",
     "B2B", "B", Role.CUSTOMER, ["Distribution"], {"Customer no.": "C-10041", "VAT": "GB123456789"}),
    ("Pennine Logistics Ltd", "pennine-logistics.co.uk", "GB", "113", "496", "Logistics", "250-999",
     "B2B", "A", Role.CUSTOMER, ["Logistics", "Framework agreement"], {"Customer no.": "C-10057", "Depots": 4}),
    ("Carter & Webb Construction plc", "carterwebb.co.uk", "GB", "161", "496", "Construction", "250-999",
     "B2B", "B", Role.PROSPECT, ["Tender"], {"Source": "Trade show Birmingham"}),
    ("Blackwood IT Services Ltd", "blackwood-it.co.uk", "GB", "118", "496", "IT services", "10-49",
     "B2B", "C", Role.SUPPLIER, ["Service provider", "IT"], {"Supplier no.": "S-2004"}),
    ("Kingsley Motors Ltd", "kingsley-motors.co.uk", "GB", "121", "496", "Car dealership", "50-249",
     "B2C", "B", Role.CUSTOMER, ["Workshop"], {"Customer no.": "C-10102"}),
    ("Riverside Pharmacy", "riverside-pharmacy.co.uk", "GB", "116", "496", "Pharmacy", "1-9",
     "B2C", "C", Role.LEAD, ["Retail"], {"Source": "Website"}),
    ("Ashford Print & Media Ltd", "ashford-print.co.uk", "GB", "117", "496", "Printing", "10-49",
     "B2B", "B", Role.CUSTOMER, ["Print"], {"Customer no.": "C-10118", "Payment terms": "14 days"}),
    ("Mersey Packaging Ltd", "mersey-packaging.co.uk", "GB", "151", "496", "Packaging", "50-249",
     "B2B", "A", Role.SUPPLIER, ["Supplier", "Packaging"], {"Supplier no.": "S-2011"}),
    ("Glenmore Metalworks Ltd", "glenmore-metal.co.uk", "GB", "141", "496", "Metalwork", "10-49",
     "B2B", "C", Role.PROSPECT, ["Trade"], {"Source": "Referral from Hargreaves Engineering"}),
    ("Oakley Catering Services Ltd", "oakley-catering.co.uk", "GB", "115", "496", "Catering", "50-249",
     "B2C", "C", Role.DEBTOR, ["Second reminder"], {"Customer no.": "C-10077", "Outstanding": "GBP 4,180.40"}),
    ("Fairfield Bakery Ltd", "fairfield-bakery.co.uk", "GB", "131", "496", "Food", "10-49",
     "B2C", "B", Role.CUSTOMER, ["Chain of shops"], {"Customer no.": "C-10130", "Shops": 7}),
    ("Lakeshore Controls Inc.", "lakeshore-controls.com", "US", "312", "555", "Automation", "50-249",
     "B2B", "B", Role.CUSTOMER, ["USA", "Export"], {"Customer no.": "C-10140", "Incoterms": "DAP Chicago"}),
    ("Bay State Precision Corp.", "baystate-precision.com", "US", "617", "555", "Precision engineering",
     "50-249", "B2B", "A", Role.CUSTOMER, ["USA", "Export", "Customs"], {"Incoterms": "DAP Boston"}),
    ("Shannon Medical Devices Ltd", "shannon-medical.ie", "IE", "1", "496", "Medical devices", "50-249",
     "B2B", "B", Role.CUSTOMER, ["Ireland", "Export"], {"VAT": "IE1234567T"}),
)
COUNTRY_CODES = {"DE": "49", "AT": "43", "CH": "41", "GB": "44", "US": "1", "IE": "353"}
# Fixed-length numbering plans: switchboard number + extension must give a valid number there.
EXTENSION_DIGITS = {"CH": 2, "GB": 4, "US": 4, "IE": 4}
MOBILE_PREFIXES = {"DE": ("151", "160", "170", "171", "172", "176", "178"), "AT": ("664", "676", "699"),
                   "CH": ("76", "78", "79"), "GB": ("7700", "7911", "7400"), "IE": ("83", "85", "87")}
EXTENSIONS = range(100, 200)  # direct dials within a company; distinct also in their last two digits

FEMALE = ("Sabine", "Petra", "Claudia", "Monika", "Bärbel", "Dörte", "Julia", "Katharina", "Lea", "Sophie",
          "Jördis", "Nicole", "Stefanie", "Ursula", "Marlene", "Hannah")
MALE = ("Jürgen", "Jörg", "Björn", "Günther", "Uwe", "Sören", "Thomas", "Michael", "Stefan", "Matthias",
        "Rüdiger", "Klaus", "Andreas", "Florian", "Tobias", "Lukas")
SURNAMES = ("Müller", "Schröder", "Köhler", "Schäfer", "Krämer", "Böhm", "Jäger", "Günther", "Hübner", "Weiß",
            "Groß", "Fuchs", "Wagner", "Richter", "Wolf", "Neumann", "Schwarz", "Braun", "Hartmann", "Lange",
            "Krause", "Lehmann", "Möller", "Schmitt", "Vogt", "Kühn", "Förster", "Seidel")
SURNAMES_AT = ("Huber", "Pichler", "Gruber", "Eder", "Moser", "Wimmer")
SURNAMES_CH = ("Meier", "Keller", "Frei", "Brunner", "Baumgartner")
FEMALE_EN = ("Emma", "Charlotte", "Olivia", "Amelia", "Sophie", "Grace", "Lucy", "Hannah", "Emily", "Jessica",
             "Rachel", "Megan", "Sarah", "Laura", "Claire", "Fiona")
MALE_EN = ("Oliver", "James", "Harry", "George", "Jack", "William", "Thomas", "Daniel", "Matthew", "Richard",
           "Peter", "Andrew", "Michael", "David", "Robert", "Edward")
SURNAMES_EN = ("Thompson", "Hughes", "Clarke", "Patel", "Walker", "Wright", "Robinson", "Wood", "Turner", "Hill",
               "Green", "Baker", "Harris", "Cooper", "King", "Ward", "Morris", "Bell", "Cook", "Parker", "Evans",
               "Collins", "Mitchell", "Bailey", "Foster", "Russell", "Shaw", "Palmer")
SURNAMES_IE = ("Murphy", "Kelly", "O'Brien", "Byrne", "Ryan", "Walsh")
POSITIONS = ("Einkauf", "Geschäftsführung", "Buchhaltung", "Technik", "Vertrieb", "Qualitätssicherung",
             "Lager / Logistik", "Projektleitung")
POSITIONS_EN = ("Purchasing", "Managing Director", "Accounts", "Engineering", "Sales", "Quality Assurance",
                "Warehouse / Logistics", "Project Manager")
FREE_MAIL = ("gmx.de", "web.de", "gmail.com", "t-online.de")
FREE_MAIL_EN = ("gmail.com", "outlook.com", "btinternet.com", "yahoo.co.uk")

# (name, role, local part of the address, phone extension): the CRM's own people, at the staff domain
STAFF = (("Katrin Vogel", "admin", "katrin.vogel", "12"), ("Jonas Becker", "staff", "jonas.becker", "14"),
         ("Lena Hoffmann", "readonly", "lena.hoffmann", "17"))
STAFF_EN = (("Kate Morgan", "admin", "kate.morgan", "12"), ("Daniel Reed", "staff", "daniel.reed", "14"),
            ("Laura Bennett", "readonly", "laura.bennett", "17"))

PRODUCTS_DE = ("Kugellager 6204-2RS", "Hydraulikschläuche DN12", "Steuerungsmodule SX-200",
               "Förderband-Ersatzrollen", "Edelstahlschrauben M8 (A4)", "Induktive Sensoren IK-30",
               "Druckluftventile 5/2-Wege", "Schaltschrank-Lüfter 230 V")
PRODUCTS_EN = ("ball bearings 6204-2RS", "SX-200 control modules", "inductive sensors IK-30",
               "stainless steel bolts M8 (A4)")

# Mail topics: a subject and the messages of a thread, in order. "in" is from the contact, "out" from
# staff. {placeholders} are filled per thread; "pdf"/"txt" name an attachment, "html" a formatted body.
TOPICS_DE: tuple[dict[str, Any], ...] = (
    {"subject": "Anfrage {product}", "weight": 3, "mails": (
        ("in", "{greet_staff}\n\nfür unser Werk benötigen wir {qty} Stück {product}. Können Sie uns bis "
               "{deadline} ein Angebot schicken? Bitte mit Angabe der Lieferzeit.\n\n{sig}", None),
        ("out", "{greet}\n\nvielen Dank für Ihre Anfrage. Anbei erhalten Sie unser Angebot {quote} über {qty} "
                "Stück {product} zum Gesamtpreis von {amount} netto. Die Lieferzeit beträgt ca. {weeks} Wochen "
                "nach Auftragseingang.\n\nFür Rückfragen bin ich gern für Sie da.\n\n{staff_sig}",
         "pdf:Angebot_{quote}"),
        ("in", "{greet_staff}\n\ndanke für das Angebot. Wir stimmen das intern ab und melden uns bis Ende "
               "nächster Woche.\n\n{sig}", None),
    )},
    {"subject": "Bestellung {order}", "weight": 3, "html": True, "mails": (
        ("in", "{greet_staff}\n\nhiermit bestellen wir gemäß Ihrem Angebot {quote}:\n\n  {qty} x {product}\n\n"
               "Lieferanschrift wie gehabt. Bitte senden Sie uns eine Auftragsbestätigung.\n\n{sig}",
         "pdf:Bestellung_{order}"),
        ("out", "{greet}\n\nbesten Dank für Ihren Auftrag. Anbei die Auftragsbestätigung {ab}. Voraussichtlicher "
                "Versand: {ship_date}.\n\n{staff_sig}", "pdf:Auftragsbestaetigung_{ab}"),
    )},
    {"subject": "Rechnung {invoice}", "weight": 3, "mails": (
        ("out", "{greet}\n\nanbei erhalten Sie unsere Rechnung {invoice} über {amount} (zahlbar bis "
                "{due_date} ohne Abzug).\n\n{staff_sig}", "pdf:Rechnung_{invoice}"),
        ("in", "{greet_staff}\n\nzu Rechnung {invoice}: Auf unserer Bestellung ist ein Rabatt von 3 % "
               "vereinbart, der fehlt. Können Sie die Rechnung bitte korrigieren?\n\n{sig}", None),
        ("out", "{greet}\n\nSie haben recht, das tut mir leid. Die korrigierte Rechnung folgt heute "
                "noch per Post und Mail.\n\n{staff_sig}", None),
    )},
    {"subject": "Lieferung zu Auftrag {ab}", "weight": 2, "mails": (
        ("in", "{greet_staff}\n\nwann können wir mit der Lieferung zu Ihrer Auftragsbestätigung {ab} rechnen? "
               "Unsere Montage ist für {deadline} geplant.\n\n{sig}", None),
        ("out", "{greet}\n\ndie Ware verlässt am {ship_date} unser Lager. Die Sendungsnummer lautet "
                "{tracking}.\n\n{staff_sig}", None),
        ("in", "Danke, passt!\n\n{sig}", None),
    )},
    {"subject": "Reklamation Lieferschein {delivery}", "weight": 2, "mails": (
        ("in", "{greet_staff}\n\nbei der Lieferung {delivery} waren 4 von {qty} {product} beschädigt "
               "(siehe Protokoll im Anhang). Bitte um kurzfristigen Ersatz.\n\n{sig}", "txt:Pruefprotokoll_{delivery}"),
        ("out", "{greet}\n\nentschuldigen Sie bitte den Ärger. Der Ersatz geht morgen als Expresssendung raus; "
                "den Retourenschein für die beschädigten Teile finden Sie im Anhang.\n\n{staff_sig}",
         "pdf:Retourenschein_{delivery}"),
        ("in", "{greet_staff}\n\nErsatz ist heute angekommen, alles in Ordnung. Vielen Dank für die schnelle "
               "Abwicklung!\n\n{sig}", None),
    )},
    {"subject": "Terminvorschlag {meeting_date}", "weight": 2, "mails": (
        ("out", "{greet}\n\nich bin in der Woche vom {meeting_date} in Ihrer Gegend und würde Ihnen gern "
                "unsere neuen {product} vorstellen. Passt Ihnen Dienstag um 10:00 Uhr?\n\n{staff_sig}", None),
        ("in", "{greet_staff}\n\nDienstag passt leider nicht, Mittwoch ab 14 Uhr wäre möglich.\n\n{sig}", None),
        ("out", "{greet}\n\nprima, dann Mittwoch um 14:00 Uhr bei Ihnen. Ich freue mich!\n\n{staff_sig}", None),
    )},
    {"subject": "Rückfrage technische Daten {product}", "weight": 1, "mails": (
        ("in", "{greet_staff}\n\nkönnen Sie uns das Datenblatt zu {product} schicken? Uns interessiert vor "
               "allem die zulässige Betriebstemperatur.\n\n{sig}", None),
        ("out", "{greet}\n\ngern, das Datenblatt hängt an. Zulässig sind -20 °C bis +80 °C.\n\n{staff_sig}",
         "pdf:Datenblatt"),
    )},
)
TOPICS_DEBTOR = (
    {"subject": "Zahlungserinnerung Rechnung {invoice}", "weight": 1, "mails": (
        ("out", "{greet}\n\nsicher ist es Ihrer Aufmerksamkeit entgangen: Unsere Rechnung {invoice} über "
                "{amount} war am {due_date} fällig. Bitte überweisen Sie den Betrag in den nächsten 7 Tagen."
                "\n\n{staff_sig}", "pdf:Rechnung_{invoice}"),
        ("in", "{greet_staff}\n\nentschuldigen Sie, die Zahlung ist gestern veranlasst worden.\n\n{sig}", None),
    )},
)
TOPICS_SUPPLIER = (
    {"subject": "Bestellung Verpackungsmaterial {order}", "weight": 1, "mails": (
        ("out", "{greet}\n\nbitte liefern Sie uns 40 Rollen Luftpolsterfolie und 500 Faltkartons 400x300x200 "
                "bis {deadline}.\n\n{staff_sig}", None),
        ("in", "{greet_staff}\n\nvielen Dank, die Auftragsbestätigung {ab} liegt bei.\n\n{sig}",
         "pdf:AB_{ab}"),
    )},
)
TOPICS_EN = (
    {"subject": "Quotation request: {product}", "weight": 3, "mails": (
        ("in", "{greet_staff}\n\ncould you please send us a quotation for {qty} {product}, delivered to our "
               "warehouse? We would need them by {deadline}.\n\n{sig}", None),
        ("out", "{greet}\n\nthank you for your enquiry. Please find attached our quotation {quote} for {qty} "
                "{product}, total {amount} (DDP). Lead time is about {weeks} weeks.\n\n{staff_sig}",
         "pdf:Quotation_{quote}"),
        ("in", "{greet_staff}\n\nthanks, that looks good. We will place the order next week.\n\n{sig}", None),
    )},
    {"subject": "Invoice {invoice}", "weight": 2, "mails": (
        ("out", "{greet}\n\nplease find attached our invoice {invoice} for {amount}, due on {due_date}.\n\n"
                "{staff_sig}", "pdf:Invoice_{invoice}"),
        ("in", "{greet_staff}\n\nreceived with thanks, payment is scheduled for next Friday.\n\n{sig}", None),
    )},
    {"subject": "Delivery status order {ab}", "weight": 2, "mails": (
        ("in", "{greet_staff}\n\nany news on order {ab}? Our customer is chasing us.\n\n{sig}", None),
        ("out", "{greet}\n\nthe goods leave our warehouse on {ship_date}, tracking number {tracking}. Customs "
                "papers will travel with the carrier.\n\n{staff_sig}", None),
    )},
    {"subject": "Complaint: damaged goods, delivery note {delivery}", "weight": 1, "mails": (
        ("in", "{greet_staff}\n\nthree of the {product} in delivery {delivery} arrived damaged, see the attached "
               "report. Could you send replacements?\n\n{sig}", "txt:Damage_report_{delivery}"),
        ("out", "{greet}\n\nsorry about that. Replacements are on their way by express.\n\n{staff_sig}", None),
    )},
    {"subject": "Order {order}", "weight": 3, "html": True, "mails": (
        ("in", "{greet_staff}\n\nfurther to your quotation {quote}, please supply:\n\n  {qty} x {product}\n\n"
               "Delivery address as usual. Please send us an order confirmation.\n\n{sig}", "pdf:Order_{order}"),
        ("out", "{greet}\n\nthank you for your order. Please find attached our order confirmation {ab}. "
                "Expected dispatch: {ship_date}.\n\n{staff_sig}", "pdf:Order_confirmation_{ab}"),
    )},
    {"subject": "Visit in the week of {meeting_date}", "weight": 2, "mails": (
        ("out", "{greet}\n\nI will be in your area in the week of {meeting_date} and would like to show you our "
                "new {product}. Would Tuesday at 10 am suit you?\n\n{staff_sig}", None),
        ("in", "{greet_staff}\n\nTuesday is difficult, Wednesday afternoon from 2 pm would work.\n\n{sig}", None),
        ("out", "{greet}\n\ngreat, Wednesday at 2 pm at your site then. Looking forward to it!\n\n{staff_sig}",
         None),
    )},
    {"subject": "Technical data for {product}", "weight": 1, "mails": (
        ("in", "{greet_staff}\n\ncould you send us the data sheet for the {product}? We mainly need the "
               "permitted operating temperature.\n\n{sig}", None),
        ("out", "{greet}\n\nof course, the data sheet is attached. Permitted range: -20 °C to +80 °C.\n\n"
                "{staff_sig}", "pdf:Data_sheet"),
    )},
)
TOPICS_DEBTOR_EN = (
    {"subject": "Payment reminder: invoice {invoice}", "weight": 1, "mails": (
        ("out", "{greet}\n\nour invoice {invoice} for {amount} was due on {due_date} and is still unpaid. Please "
                "settle it within the next 7 days.\n\n{staff_sig}", "pdf:Invoice_{invoice}"),
        ("in", "{greet_staff}\n\napologies, the payment went out yesterday.\n\n{sig}", None),
    )},
)
TOPICS_SUPPLIER_EN = (
    {"subject": "Packaging order {order}", "weight": 1, "mails": (
        ("out", "{greet}\n\nplease deliver 40 rolls of bubble wrap and 500 cartons 400x300x200 by {deadline}."
                "\n\n{staff_sig}", None),
        ("in", "{greet_staff}\n\nthank you, our order confirmation {ab} is attached.\n\n{sig}", "pdf:OC_{ab}"),
    )},
)
WEB_ENQUIRY_EN = {"subject": "Enquiry via your website", "mails": (
    ("in", "Hello,\n\nI found your website and am interested in {product}. Do you also deliver to private "
           "customers? I would appreciate a call back.\n\nBest wishes\n{name}\n{phone}", None),
    ("out", "{greet}\n\nthank you for your interest. Yes, we deliver to private customers too; I will call you "
            "tomorrow morning.\n\n{staff_sig}", None),
)}
HTML_ORDER_EN = ("<p>{greet_staff}</p><p>please find our order {order} below:</p><ul><li>{qty} x {product}</li>"
                 "</ul><p><b>Please deliver by {deadline} at the latest.</b></p><p>{sig_html}</p>")

# Mail to the support address: each opens a ticket. The staff answer (BCC to the CRM) makes it pending,
# the customer's thanks open again, and the demo solves one of those.
SUPPORT_TOPICS_DE = (
    {"subject": "Störung an {product}", "mails": (
        ("in", "Guten Tag,\n\nseit heute früh meldet unser {product} den Fehler E-17, die Anlage steht. "
               "Können Sie uns helfen?\n\n{sig}", None),
        ("out", "{greet}\n\nbitte setzen Sie das Modul einmal zurück (Taste 5 Sekunden gedrückt halten). Bleibt "
                "der Fehler, schicken wir einen Techniker.\n\n{staff_sig}", None),
        ("in", "{greet_staff}\n\nnach dem Zurücksetzen läuft alles wieder. Vielen Dank!\n\n{sig}", None),
    )},
    {"subject": "Ersatzteil für {product} gesucht", "mails": (
        ("in", "Guten Tag,\n\nwir suchen ein Ersatzteil für {product} (Baujahr 2019). Haben Sie das noch "
               "am Lager?\n\n{sig}", None),
        ("out", "{greet}\n\nja, das Teil ist vorrätig und kann morgen verschickt werden. Soll ich es Ihnen "
                "anbieten?\n\n{staff_sig}", None),
        ("in", "{greet_staff}\n\nja bitte, gern mit Expressversand.\n\n{sig}", None),
    )},
    {"subject": "Zugang zum Kundenportal gesperrt", "mails": (
        ("in", "Hallo,\n\nmein Zugang zum Kundenportal ist nach mehreren Versuchen gesperrt. Können Sie ihn "
               "wieder freischalten?\n\n{sig}", None),
        ("out", "{greet}\n\nich habe Ihren Zugang entsperrt; Sie erhalten gleich eine Mail zum Zurücksetzen "
                "des Passworts.\n\n{staff_sig}", None),
        ("in", "{greet_staff}\n\nhat geklappt, danke!\n\n{sig}", None),
    )},
)
SUPPORT_TOPICS_EN = (
    {"subject": "Fault on {product}", "mails": (
        ("in", "Hello,\n\nsince this morning our {product} shows error E-17 and the line has stopped. "
               "Can you help?\n\n{sig}", None),
        ("out", "{greet}\n\nplease reset the module once (hold the button for 5 seconds). If the error stays, "
                "we will send an engineer.\n\n{staff_sig}", None),
        ("in", "{greet_staff}\n\nafter the reset everything runs again. Many thanks!\n\n{sig}", None),
    )},
    {"subject": "Spare part needed for {product}", "mails": (
        ("in", "Hello,\n\nwe need a spare part for our {product} (built 2019). Do you still have it in "
               "stock?\n\n{sig}", None),
        ("out", "{greet}\n\nyes, the part is in stock and can go out tomorrow. Shall I send you a "
                "quotation?\n\n{staff_sig}", None),
        ("in", "{greet_staff}\n\nyes please, with express delivery.\n\n{sig}", None),
    )},
    {"subject": "Customer portal account locked", "mails": (
        ("in", "Hi,\n\nmy customer portal account was locked after a few attempts. Could you unlock it?"
               "\n\n{sig}", None),
        ("out", "{greet}\n\nI have unlocked your account; you will get an e-mail to reset the password "
                "shortly.\n\n{staff_sig}", None),
        ("in", "{greet_staff}\n\nthat worked, thank you!\n\n{sig}", None),
    )},
)
WEB_ENQUIRY = {"subject": "Anfrage über Ihre Website", "mails": (
    ("in", "Guten Tag,\n\nich habe Ihre Seite gefunden und interessiere mich für {product}. Liefern Sie auch an "
           "Privatkunden? Über einen Rückruf würde ich mich freuen.\n\nViele Grüße\n{name}\n{phone}", None),
    ("out", "{greet}\n\nvielen Dank für Ihr Interesse. Ja, wir liefern auch an Privatkunden; ich rufe Sie "
            "morgen Vormittag an.\n\n{staff_sig}", None),
)}
HTML_ORDER = ("<p>{greet_staff}</p><p>anbei unsere Bestellung {order}:</p><ul><li>{qty} x {product}</li></ul>"
              "<p><b>Bitte bis spätestens {deadline} liefern.</b></p><p>{sig_html}</p>")

CALL_NOTES = ("Rückfrage zur Lieferung, Liefertermin bestätigt.", "Möchte ein Angebot für 200 Stück, schicke ich "
              "bis Freitag.", "Reklamation besprochen, Ersatz wird verschickt.", "Fragt nach Rabatt bei "
              "Jahresabnahme. Rücksprache mit Vertrieb.", "Terminabstimmung für Besuch vor Ort.",
              "Rechnung unklar, Kopie per Mail geschickt.", "Will Rückruf vom Techniker wegen Einbau.",
              "Kurze Info: Bestellung folgt nächste Woche.", "Zollpapiere fehlten, nochmals geschickt.")
NOTE_TEXTS = ("Besuch vor Ort: Neue Halle im Bau, Bedarf an Fördertechnik ab Q3.",
              "Messegespräch: interessiert an Rahmenvertrag, Unterlagen zugesagt.",
              "Zahlungsmoral schlecht, nur noch gegen Vorkasse liefern.",
              "Ansprechpartner wechselt zum Monatsende, Nachfolger noch offen.",
              "Wünscht Rechnungen nur noch als PDF an die Buchhaltung.",
              "Sehr zufrieden mit der letzten Lieferung, Referenz möglich.",
              "Preisvergleich mit Wettbewerber läuft, Angebot nachbessern?",
              "Entscheidungen fallen in der Zentrale in München, Ansprechpartner dort ist der Einkaufsleiter.",
              "Geburtstag im Kalender eingetragen, Weihnachtskarte schicken.",
              "Kein Interesse mehr an Wartungsvertrag, Thema in 6 Monaten erneut ansprechen.")

CALL_NOTES_EN = ("Asked about the delivery, date confirmed.", "Wants a quotation for 200 pieces, will send it "
                 "by Friday.", "Complaint discussed, replacement goes out.", "Asks for a discount on a yearly "
                 "volume. To check with sales.", "Agreed a date for a site visit.", "Invoice unclear, sent a copy "
                 "by e-mail.", "Wants a call back from an engineer about the installation.",
                 "Quick note: order follows next week.", "Called about the customs papers, sent again.")
NOTE_TEXTS_EN = ("Site visit: new hall under construction, conveyor equipment needed from Q3.",
                 "Trade show talk: interested in a framework agreement, documents promised.",
                 "Pays late: deliver only against prepayment from now on.",
                 "Contact leaves at the end of the month, successor not yet known.",
                 "Wants invoices only as PDF to accounts.",
                 "Very happy with the last delivery, happy to be a reference.",
                 "Comparing prices with a competitor: improve the quotation?",
                 "Decisions are made at the head office in Manchester.",
                 "Birthday in the calendar, send a Christmas card.",
                 "No longer interested in a service contract, ask again in 6 months.")
REMINDER_TITLES_DE = ("Angebot nachfassen", "Rückruf wegen Lieferung", "Zahlungseingang prüfen",
                      "Termin für Vorführung vereinbaren", "Aktuelle Preisliste schicken", "Rahmenvertrag besprechen")
REMINDER_TITLES_EN = ("Follow up on the quote", "Call back about the delivery", "Check the payment came in",
                      "Arrange a demonstration", "Send the updated price list", "Discuss the framework agreement")
# Call subjects on the timeline, as staff title them: inbound/outbound, answered or not.
CALL_SUBJECTS_DE = {(True, True): "Anruf von {name}", (True, False): "Verpasster Anruf von {name}",
                    (False, True): "Anruf bei {name}", (False, False): "{name} nicht erreicht"}
CALL_SUBJECTS_EN = {(True, True): "Call from {name}", (True, False): "Missed call from {name}",
                    (False, True): "Call to {name}", (False, False): "Could not reach {name}"}

# Staff forwards the attribution rightly leaves for triage: the original sender is given by display name
# only, and either two contacts share that name (the demo's namesakes) or nobody has it.
FORWARDS_DE = (
    ("Zur Info, kam an mich persönlich.", "Preisanfrage {product}",
     "Hallo,\n\nkönnen Sie mir bitte Ihre aktuellen Preise für {product} schicken?\n\nGruß\n{name}"),
    ("Weiß jemand, wer das ist?", "Rückruf erbeten",
     "Guten Tag,\n\nbitte rufen Sie mich wegen unserer Bestellung zurück.\n\nDanke\n{name}"),
)
FORWARDS_EN = (
    ("FYI, this came to me directly.", "Price request {product}",
     "Hello,\n\ncould you send me your current prices for {product}, please?\n\nRegards\n{name}"),
    ("Does anybody know who this is?", "Please call back",
     "Hello,\n\nplease call me back about our order.\n\nThanks\n{name}"),
)

TINY_PDF_LINES = ("{own}", "{title}", "Datum: {date}", "Betrag: {amount}")
TINY_PDF_LINES_EN = ("{own}", "{title}", "Date: {date}", "Amount: {amount}")


@dataclass(frozen=True)
class DemoLanguage:
    """Everything that differs between the German and the English demo."""
    code: str
    own_company: str
    own_phone: str          # with {ext}: the staff's direct dials
    default_domain: str     # staff domain when [mail] staff_domains names none
    staff: tuple[tuple[str, str, str, str], ...]
    female_staff: frozenset[str]
    companies: tuple[tuple[Any, ...], ...]
    home_country: str       # private customers and strangers
    free_mail: tuple[str, ...]
    positions: tuple[str, ...]
    tags: tuple[str, ...]
    private_tag: str
    source_field: str
    sources: tuple[str, ...]
    labels: tuple[str, str, str]  # switchboard, office, mobile
    namesake: tuple[str, str, bool]
    topics: tuple[dict[str, Any], ...]
    topics_debtor: tuple[dict[str, Any], ...]
    topics_supplier: tuple[dict[str, Any], ...]
    web_enquiry: dict[str, Any]
    support_topics: tuple[dict[str, Any], ...]
    forwards: tuple[tuple[str, str, str], ...]
    html_order: str
    call_notes: tuple[str, ...]
    call_subjects: dict[tuple[bool, bool], str]
    note_subject: str
    note_texts: tuple[str, ...]
    reminder_titles: tuple[str, ...]
    pdf_lines: tuple[str, ...]
    unknown_caller: str

    @property
    def english(self) -> bool:
        return self.code == "en"


GERMAN = DemoLanguage(
    code="de", own_company="Beispiel Firma GmbH", own_phone="+49 30 2045 180-{ext}",
    default_domain="beispiel-firma.de", staff=STAFF, female_staff=frozenset({"Katrin", "Lena"}),
    companies=COMPANIES, home_country="DE", free_mail=FREE_MAIL, positions=POSITIONS,
    tags=("Entscheider", "Newsletter", "Messe 2025", "Technik"), private_tag="Privatkunde", source_field="Quelle",
    sources=("Website", "Empfehlung", "Telefon"), labels=("Zentrale", "Büro", "Mobil"),
    namesake=("Thomas", "Wagner", False), topics=TOPICS_DE, topics_debtor=TOPICS_DEBTOR,
    topics_supplier=TOPICS_SUPPLIER, web_enquiry=WEB_ENQUIRY, support_topics=SUPPORT_TOPICS_DE,
    forwards=FORWARDS_DE, html_order=HTML_ORDER, call_notes=CALL_NOTES, call_subjects=CALL_SUBJECTS_DE,
    note_subject="Notiz", note_texts=NOTE_TEXTS, reminder_titles=REMINDER_TITLES_DE, pdf_lines=TINY_PDF_LINES,
    unknown_caller="unbekannter Nummer {number}")
ENGLISH = DemoLanguage(
    code="en", own_company="Example Trading Ltd", own_phone="+44 20 7946 01{ext}",
    default_domain="example-trading.co.uk", staff=STAFF_EN, female_staff=frozenset({"Kate", "Laura"}),
    companies=COMPANIES_EN, home_country="GB", free_mail=FREE_MAIL_EN, positions=POSITIONS_EN,
    tags=("Decision maker", "Newsletter", "Trade show 2025", "Engineering"), private_tag="Private customer",
    source_field="Source", sources=("Website", "Referral", "Phone"), labels=("Switchboard", "Office", "Mobile"),
    namesake=("James", "Walker", False), topics=TOPICS_EN, topics_debtor=TOPICS_DEBTOR_EN,
    topics_supplier=TOPICS_SUPPLIER_EN, web_enquiry=WEB_ENQUIRY_EN, support_topics=SUPPORT_TOPICS_EN,
    forwards=FORWARDS_EN, html_order=HTML_ORDER_EN, call_notes=CALL_NOTES_EN, call_subjects=CALL_SUBJECTS_EN,
    note_subject="Note", note_texts=NOTE_TEXTS_EN, reminder_titles=REMINDER_TITLES_EN,
    pdf_lines=TINY_PDF_LINES_EN, unknown_caller="unknown number {number}")


def demo_language(code: str) -> DemoLanguage:
    return ENGLISH if code == "en" else GERMAN


def regional_settings(settings: Settings, language: str) -> Settings:
    """The English demo's office is in London: its phone region and time zone, unless the configuration
    chose others than the defaults (there is no other locale setting; the web pages follow the browser).
    Without a configured [company], the demo's made-up company prints the quotes' letterhead."""
    defaults = Settings()
    if settings.company.name == defaults.company.name:  # quotes need a letterhead: the demo's own company
        settings = replace(settings, company=demo_company(language))
    if language != "en":
        return settings
    if settings.phone.default_region == defaults.phone.default_region:
        settings = replace(settings, phone={"default_region": "GB"})
    if settings.reminders.timezone == defaults.reminders.timezone:
        settings = replace(settings, reminders={"timezone": "Europe/London"})
    return settings


def demo_company(language: str) -> dict[str, Any]:
    if language == "en":
        return {"name": "Example Engineering Ltd", "street": "1 Example Street", "postcode": "EC1A 1BB",
                "city": "London", "country": "GB", "phone": "+44 20 7946 0000", "email": "sales@example.co.uk",
                "web": "www.example.co.uk", "vat_id": "GB123456789", "seat": "London",
                "register_court": "Companies House", "register_number": "01234567",
                "managing_directors": "Emma Taylor", "bank_name": "Example Bank", "iban": "GB33BUKB20201555555555",
                "bic": "BUKBGB22", "language": "en"}
    return {"name": "Beispiel Maschinenbau GmbH", "street": "Hauptstraße 1", "postcode": "80331",
            "city": "München", "phone": "+49 89 123456-0", "email": "vertrieb@beispiel-firma.de",
            "web": "www.beispiel-firma.de", "vat_id": "DE123456789", "seat": "München",
            "register_court": "Amtsgericht München", "register_number": "HRB 123456",
            "managing_directors": "Anna Schmidt, Bernd Weber", "bank_name": "Stadtsparkasse München",
            "iban": "DE02701500000000123456", "bic": "SSKMDEMMXXX"}


def language_from_environment(environ: dict[str, str]) -> str:
    """``de`` when the locale (LC_ALL, else LANG) is German, ``en`` for anything else."""
    locale = environ.get("LC_ALL") or environ.get("LANG") or ""
    return "de" if locale.lower().startswith("de") else "en"


# --- results -----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class DemoLogin:
    email: str
    password: str


@dataclass
class Person:
    contact: Contact
    first: str
    last: str
    female: bool
    english: bool
    emails: list[str]
    phones: list[str] = field(default_factory=list)
    company: str = ""


@dataclass
class Mail:
    when: datetime
    raw: bytes
    mail_from: str
    rcpt: str | None = None  # the envelope recipient; None: the first CRM address (a BCC copy)


# --- helpers -----------------------------------------------------------------------------------------

def is_empty(session: Session) -> bool:
    """No contacts and no companies yet (the demo only fills an empty database)."""
    return (session.execute(select(Contact.id).limit(1)).first() is None
            and session.execute(select(Company.id).limit(1)).first() is None)


def ascii_local(text: str) -> str:
    """``Jörg Weiß`` → ``joerg weiss``: how people spell umlauts in addresses."""
    text = text.lower()
    for umlaut, plain in (("ä", "ae"), ("ö", "oe"), ("ü", "ue"), ("ß", "ss")):
        text = text.replace(umlaut, plain)
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return "".join(ch for ch in text if ch.isalnum() or ch in " .-")


def _local_tz() -> tzinfo:
    try:
        from zoneinfo import ZoneInfo

        return ZoneInfo("Europe/Berlin")
    except Exception:  # no tz database on this system: UTC will do
        return UTC


def business_time(rng: random.Random, now: datetime, days_back: float) -> datetime:
    """A weekday, working hours (Berlin), about ``days_back`` days before ``now``; never in the future."""
    local = (now - timedelta(days=days_back)).astimezone(_local_tz())
    while local.weekday() >= 5:
        local -= timedelta(days=1)
    local = local.replace(hour=rng.randint(7, 17), minute=rng.randint(0, 59), second=rng.randint(0, 59),
                          microsecond=0)
    when = local.astimezone(UTC)
    return min(when, now - timedelta(minutes=rng.randint(5, 90)))


def later_business_time(rng: random.Random, when: datetime) -> datetime:
    """A reply: a few hours to a few days after ``when``, again on a weekday during working hours."""
    local = (when + timedelta(hours=rng.randint(1, 60), minutes=rng.randint(0, 59))).astimezone(_local_tz())
    if local.hour < 7:
        local = local.replace(hour=7 + rng.randint(0, 2))
    elif local.hour > 17:
        local = (local + timedelta(days=1)).replace(hour=7 + rng.randint(0, 3))
    while local.weekday() >= 5:
        local += timedelta(days=1)
    return local.astimezone(UTC)


def euro(amount: float, english: bool) -> str:
    text = f"{amount:,.2f}"
    return f"EUR {text}" if english else text.replace(",", "_").replace(".", ",").replace("_", ".") + " €"


def tiny_pdf(lines: Sequence[str]) -> bytes:
    """A small, valid one-page PDF showing ``lines`` (Helvetica, WinAnsi for umlauts)."""
    def esc(s: str) -> str:
        return s.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")

    text = "BT /F1 12 Tf 72 760 Td 16 TL " + " ".join(f"({esc(line)}) Tj T*" for line in lines) + " ET"
    stream = text.encode("cp1252", "replace")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % off for off in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


# --- companies, people, staff ------------------------------------------------------------------------

def _phone(country: str, area: str, number: str, ext: str, style: int) -> str:
    """One number typed the way people type them; foreign numbers always international."""
    cc = COUNTRY_CODES[country]
    width = EXTENSION_DIGITS.get(country)
    if width:  # fixed-length numbering plans: the extension fills the number up
        ext = ext.zfill(width)[-width:]
    if country in {"GB", "US", "IE"}:
        return f"+{cc} {area} {number} {ext}"
    if country != "DE" or style == 0:
        return f"+{cc} {area} {number}-{ext}"
    if style == 1:
        return f"0{area} {number}-{ext}"
    if style == 2:
        return f"0{area}/{number}{ext}"
    return f"(0{area}) {number[:2]} {number[2:]} {ext}"


def _mobile(rng: random.Random, country: str, style: int, used: set[str]) -> str:
    """A mobile number nobody else in the demo has (``used`` holds the E.164 forms given out)."""
    while True:
        prefix = rng.choice(MOBILE_PREFIXES[country])
        digits = "".join(str(rng.randint(0, 9)) for _ in range(6 if country == "GB" else 7))
        if country != "DE":
            raw = f"+{COUNTRY_CODES[country]} {prefix} {digits[:3]} {digits[3:]}"
        else:
            raw = (f"0{prefix}/{digits}", f"+49 {prefix} {digits}", f"0049 (0){prefix} {digits[:3]} {digits[3:]}",
                   f"0{prefix} {digits[:3]} {digits[3:5]} {digits[5:]}")[style % 4]
        e164 = to_e164(raw, "DE")
        if e164 not in used:
            used.add(e164 or raw)
            return raw


def _address(rng: random.Random, first: str, last: str, domain: str) -> str:
    f, la = ascii_local(first).replace(" ", ""), ascii_local(last).replace(" ", "")
    style = rng.choice((f"{f}.{la}", f"{f}.{la}", f"{f[0]}.{la}", la, f"{f}{la[0]}"))
    return f"{style}@{domain}"


def _new_contact(session: Session, region: str, *, name: str, company: Company | None, role: Role,
                 category: Category | None, emails: list[str], phones: list[tuple[str, str]],
                 tags: list[str], fields: dict[str, Any], owner_id: int) -> Contact:
    contact = Contact(name=name, company=company, role=role, category=category, tags=sorted(tags),
                      fields=fields, owner_id=owner_id, origin="demo")
    contact.emails = [ContactEmail(email=e, label=label) for e, label in
                      zip(emails, ("work", "private", "other"), strict=False)]
    contact.phones = [ContactPhone(raw=raw, label=label, e164=to_e164(raw, region)) for label, raw in phones]
    session.add(contact)
    return contact


def _pick_name(rng: random.Random, country: str, used: set[str]) -> tuple[str, str, bool]:
    while True:
        female = rng.random() < 0.45
        if country in {"GB", "US", "IE"}:
            first = rng.choice(FEMALE_EN if female else MALE_EN)
            last = rng.choice(SURNAMES_IE + SURNAMES_EN[:6] if country == "IE" else SURNAMES_EN)
        else:
            first = rng.choice(FEMALE if female else MALE)
            pool = {"AT": SURNAMES_AT, "CH": SURNAMES_CH}.get(country, SURNAMES)
            last = rng.choice(pool + SURNAMES[:6] if country != "DE" else pool)
        if f"{first} {last}" not in used:
            used.add(f"{first} {last}")
            return first, last, female


def create_companies_and_people(session: Session, settings: Settings, rng: random.Random,
                                staff_ids: list[int], lang: DemoLanguage) -> list[Person]:
    """Companies with their people. Everybody gets a direct number of their own: an extension of their
    company's switchboard that no colleague has, and mobiles nobody else has. Two people at different
    companies share a name (``lang.namesake``), as happens in real life: mail naming only them is for triage."""
    region = settings.phone.default_region
    people: list[Person] = []
    namesake = lang.namesake
    used: set[str] = {f"{namesake[0]} {namesake[1]}"}
    mobiles: set[str] = set()
    switchboard_label, office_label, mobile_label = lang.labels
    for index, (name, domain, country, area, switchboard, industry, size, ctype, category, relation,
                tags, fields) in enumerate(lang.companies):
        company = Company(name=name, industry=industry, size=size, customer_type=CustomerType(ctype),
                          category=Category(category), tags=sorted(tags), fields=dict(fields), origin="demo")
        company.domains = [CompanyDomain(domain=domain)]
        central = _phone(country, area, switchboard, "0", rng.randint(0, 1))
        company.phones = [CompanyPhone(label=switchboard_label, raw=central, e164=to_e164(central, region))]
        session.add(company)
        extensions = iter(rng.sample(EXTENSIONS, len(EXTENSIONS)))  # drawn without replacement
        names = [_pick_name(rng, country, used) for _ in range(rng.choice((2, 3, 3, 4)))]
        if index in (0, 2):
            names.append(namesake)
        for first, last, female in names:
            english = lang.english
            emails = [_address(rng, first, last, domain)]
            if rng.random() < 0.15:
                emails.append(_address(rng, first, last, rng.choice(lang.free_mail)))
            phones = [(office_label, _phone(country, area, switchboard, str(next(extensions)), rng.randint(0, 3)))]
            if rng.random() < 0.5 and country in MOBILE_PREFIXES:
                phones.append((mobile_label, _mobile(rng, country, rng.randint(0, 3), mobiles)))
            role = relation if rng.random() < 0.85 else rng.choice((Role.PROSPECT, Role.LEAD))
            position = rng.choice(lang.positions)
            contact = _new_contact(
                session, region, name=f"{first} {last}", company=company, role=role,
                category=Category(category) if rng.random() < 0.7 else None, emails=emails, phones=phones,
                tags=rng.sample(list(lang.tags), rng.randint(0, 2)),
                fields={"Position": position}, owner_id=rng.choice(staff_ids[:2]))
            people.append(Person(contact, first, last, female, english, emails, [p for _, p in phones], name))
    for _ in range(10):  # private customers and leads at free-mail providers, no company
        first, last, female = _pick_name(rng, lang.home_country, used)
        emails = [_address(rng, first, last, rng.choice(lang.free_mail))]
        phones = ([(mobile_label, _mobile(rng, lang.home_country, rng.randint(0, 3), mobiles))]
                  if rng.random() < 0.7 else [])
        contact = _new_contact(
            session, region, name=f"{first} {last}", company=None, role=rng.choice((Role.LEAD, Role.CUSTOMER)),
            category=rng.choice((Category.C, None)), emails=emails, phones=phones, tags=[lang.private_tag],
            fields={lang.source_field: rng.choice(lang.sources)}, owner_id=rng.choice(staff_ids[:2]))
        people.append(Person(contact, first, last, female, lang.english, emails, [p for _, p in phones]))
    session.flush()
    return people


def create_staff(session: Session, domain: str, password: str,
                 lang: DemoLanguage) -> list[tuple[int, str, str, str]]:
    """(id, name, address, direct dial) of each staff user; all share the demo password."""
    out = []
    for name, role, local, ext in lang.staff:
        address = f"{local}@{domain}"
        user = add_staff(session, address, name, role, extension=ext, password=password)
        out.append((user.id, name, address, ext))
    return out


# --- mail ---------------------------------------------------------------------------------------------

class MailWriter:
    """Builds the demo's threads as RFC 5322 messages, oldest first."""

    def __init__(self, rng: random.Random, settings: Settings, staff: list[tuple[int, str, str, str]],
                 domain: str, now: datetime, lang: DemoLanguage) -> None:
        self.rng = rng
        self.lang = lang
        self.settings = settings
        self.staff = staff[:2]  # the read-only user writes no mail
        self.domain = domain
        self.now = now
        self.tz = _local_tz()
        self.mails: list[Mail] = []
        self.html_done = False

    def _values(self, person: Person, staff_name: str, english: bool, start: datetime) -> dict[str, str]:
        """What fills a topic's placeholders; dates are relative to the thread's first mail."""
        rng = self.rng
        year = start.year
        soon = start + timedelta(days=rng.randint(7, 30))
        fmt = "%d %B %Y" if english else "%d.%m.%Y"
        return {
            "product": rng.choice(PRODUCTS_EN if english else PRODUCTS_DE),
            "qty": str(rng.choice((20, 50, 100, 150, 250, 500))),
            "quote": f"AN-{year}-{rng.randint(1000, 9999)}", "order": f"B-{rng.randint(40000, 49999)}",
            "ab": f"AB-{year}-{rng.randint(1000, 9999)}", "invoice": f"RE-{year}-{rng.randint(10000, 19999)}",
            "delivery": f"LS-{rng.randint(700000, 799999)}", "tracking": f"00340434{rng.randint(10**9, 10**10 - 1)}",
            "amount": euro(rng.randint(300, 48000) + rng.choice((0, 0.5, 0.9, 0.4)), english),
            "weeks": str(rng.randint(2, 8)), "deadline": soon.strftime(fmt),
            "ship_date": (start + timedelta(days=rng.randint(2, 6))).strftime(fmt),
            "due_date": soon.strftime(fmt), "meeting_date": soon.strftime(fmt),
            "name": f"{person.first} {person.last}", "phone": person.phones[0] if person.phones else "",
            "greet": self._greet(person, english), "greet_staff": self._greet_staff(staff_name, english),
            "sig": self._signature(person, english), "staff_sig": self._staff_signature(staff_name, english),
        }

    @staticmethod
    def _greet(person: Person, english: bool) -> str:
        if english:
            return f"Dear {person.first},"
        return f"{'Sehr geehrte Frau' if person.female else 'Sehr geehrter Herr'} {person.last},"

    def _greet_staff(self, staff_name: str, english: bool) -> str:
        first, last = staff_name.split()
        if english:
            return f"Hi {first},"
        female = first in self.lang.female_staff
        return f"{'Hallo Frau' if female else 'Hallo Herr'} {last},"

    @staticmethod
    def _signature(person: Person, english: bool) -> str:
        lines = ["Kind regards" if english else "Mit freundlichen Grüßen", f"{person.first} {person.last}"]
        if person.company:
            lines.append(person.company)
        if person.phones:
            lines.append(("Phone " if english else "Tel. ") + person.phones[0])
        return "\n".join(lines)

    def _staff_signature(self, staff_name: str, english: bool) -> str:
        ext = next(s[3] for s in self.staff if s[1] == staff_name)
        return "\n".join(("Best regards" if english else "Viele Grüße", staff_name, self.lang.own_company,
                          f"{'Phone' if english else 'Tel.'} {self.lang.own_phone.format(ext=ext)}"))

    def thread(self, person: Person, topic: dict[str, Any], days_back: float, *, support: str | None = None,
               length: int | None = None) -> None:
        """One thread of ``topic``; mostly all its mails, sometimes only the first few (or ``length``).
        With ``support``, the customer writes to that address (a ticket) and staff answers with a BCC."""
        rng = self.rng
        # Mostly the contact's owner writes; now and then a colleague steps in.
        owner = [s for s in self.staff if s[0] == person.contact.owner_id]
        _, staff_name, staff_addr, _ = owner[0] if owner and rng.random() < 0.8 else rng.choice(self.staff)
        when = business_time(rng, self.now, days_back)
        values = self._values(person, staff_name, person.english, when)
        subject = topic["subject"].format(**values)
        steps = topic["mails"][: rng.randint(1, len(topic["mails"]))] if rng.random() < 0.4 else topic["mails"]
        if length is not None:
            steps = topic["mails"][:length]
        customer = (f"{person.first} {person.last}", rng.choice(person.emails))
        staff = (staff_name, staff_addr)
        helpdesk = ("Support", support) if support else staff
        refs: list[str] = []
        previous: tuple[str, str, datetime] | None = None  # (author, text, date) of the mail replied to
        for index, (direction, body, attachment) in enumerate(steps):
            if index:
                when = later_business_time(rng, when)
                if when >= self.now:
                    return
            sender, recipient = (customer, helpdesk if index == 0 else staff) if direction == "in" \
                else (staff, customer)
            own_text = body.format(**values)
            text = own_text + (self._quote(*previous, person.english) if previous else "")
            prefix = "" if not index else ("RE: " if person.english else rng.choice(("AW: ", "Re: ")))
            html = None
            if direction == "in" and topic.get("html") and not self.html_done:
                self.html_done = True
                safe = {key: html_lib.escape(value) for key, value in values.items()}
                html = self.lang.html_order.format(**safe, sig_html=safe["sig"].replace("\n", "<br>"))
            msg = self._message(sender, recipient, prefix + subject, text, when, refs, html)
            if attachment:
                self._attach(msg, attachment.format(**values), values, person.english)
            refs.append(msg["Message-ID"])
            rcpt = support if support and direction == "in" and index == 0 else None
            self.mails.append(Mail(when, bytes(msg), sender[1], rcpt))
            previous = (sender[0], own_text, when)

    def _quote(self, author: str, text: str, when: datetime, english: bool) -> str:
        local = when.astimezone(self.tz)
        if english:
            head = f"On {local:%d %b %Y, at %H:%M}, {author} wrote:"
        else:
            head = f"Am {local:%d.%m.%Y um %H:%M} schrieb {author}:"
        quoted = "\n".join(("> " + line).rstrip() for line in text.splitlines())
        return f"\n\n{head}\n{quoted}\n"

    def _message(self, sender: tuple[str, str], recipient: tuple[str, str], subject: str, text: str,
                 when: datetime, refs: list[str], html: str | None) -> EmailMessage:
        msg = EmailMessage()
        authserv = self.settings.mail.trusted_authserv_ids
        if sender[1].endswith("@" + self.domain) and authserv and not self.settings.mail.trusted_relays:
            # No trusted relay to come from: our own server vouches for the staff sender instead.
            msg["Authentication-Results"] = f"{authserv[0]}; dkim=pass header.d={self.domain}"
        msg["From"] = f"{sender[0]} <{sender[1]}>"
        msg["To"] = f"{recipient[0]} <{recipient[1]}>"
        msg["Subject"] = subject
        msg["Date"] = format_datetime(when.astimezone(self.tz))
        msg["Message-ID"] = f"<{self.rng.getrandbits(64):016x}.{int(when.timestamp())}@{sender[1].split('@')[1]}>"
        if refs:
            msg["In-Reply-To"] = refs[-1]
            msg["References"] = " ".join(refs)
        msg.set_content(text)
        if html:
            msg.add_alternative(html, subtype="html")
        return msg

    def _attach(self, msg: EmailMessage, spec: str, values: dict[str, str], english: bool) -> None:
        kind, _, stem = spec.partition(":")
        if kind == "pdf":
            title = stem.replace("_", " ")
            lines = [line.format(own=self.lang.own_company, title=title, date=values["due_date"],
                                 amount=values["amount"]) for line in self.lang.pdf_lines]
            msg.add_attachment(tiny_pdf(lines), maintype="application", subtype="pdf", filename=f"{stem}.pdf")
        else:
            report = ("Inspection report" if english else "Prüfprotokoll") + f" {values['delivery']}\n"
            report += "".join(f"Pos. {i}: {values['product']} – {'damaged' if english else 'beschädigt'}\n"
                              for i in range(1, 5))
            msg.add_attachment(report, subtype="plain", filename=f"{stem}.txt")

    def web_enquiry(self, person: Person, days_back: float) -> None:
        self.thread(person, self.lang.web_enquiry, days_back)

    def forward(self, sender_name: str, template: tuple[str, str, str], days_back: float) -> None:
        """A colleague forwards a mail whose original sender the header gives by display name only
        (Outlook does that for senders in the address book)."""
        note, subject, body = template
        _, staff_name, staff_addr, _ = self.rng.choice(self.staff)
        original = business_time(self.rng, self.now, days_back + 1)
        when = later_business_time(self.rng, original)
        if when >= self.now:
            when = self.now - timedelta(minutes=30)
        values = {"product": self.rng.choice(PRODUCTS_EN if self.lang.english else PRODUCTS_DE),
                  "name": sender_name}
        subject = subject.format(**values)
        local = original.astimezone(self.tz)
        if self.lang.english:
            head = (f"-----Original Message-----\nFrom: {sender_name}\nSent: {local:%A, %d %B %Y %H:%M}\n"
                    f"To: {staff_name}\nSubject: {subject}")
            prefix = "FW: "
        else:
            head = (f"-----Ursprüngliche Nachricht-----\nVon: {sender_name}\nGesendet: {local:%d.%m.%Y %H:%M}\n"
                    f"An: {staff_name}\nBetreff: {subject}")
            prefix = "WG: "
        text = f"{note}\n\n{self._staff_signature(staff_name, self.lang.english)}\n\n{head}\n\n" \
               f"{body.format(**values)}\n"
        crm = self.settings.mail.crm_addresses[0]
        msg = self._message((staff_name, staff_addr), ("CRM", crm), prefix + subject, text, when, [], None)
        self.mails.append(Mail(when, bytes(msg), staff_addr))

    def mime_bomb(self, person: Person, parts: int, days_back: float) -> None:
        """A message with more MIME parts than ``[mail] max_parts`` allows: processing refuses it, and it
        waits under triage's failed mail with that reason."""
        when = business_time(self.rng, self.now, days_back)
        msg = self._message((f"{person.first} {person.last}", person.emails[0]),
                            ("CRM", self.settings.mail.crm_addresses[0]),
                            "Scans", "", when, [], None)
        for number in range(parts):
            msg.add_attachment(f"page {number + 1}\n", subtype="plain", filename=f"scan-{number + 1:03d}.txt")
        self.mails.append(Mail(when, bytes(msg), person.emails[0]))


def _weighted(rng: random.Random, topics: Sequence[dict[str, Any]]) -> dict[str, Any]:
    return rng.choices(list(topics), weights=[t.get("weight", 1) for t in topics])[0]


def _topics_for(person: Person, lang: DemoLanguage) -> Sequence[dict[str, Any]]:
    role = person.contact.role
    if role == Role.SUPPLIER:
        return lang.topics_supplier
    if role == Role.DEBTOR:
        return lang.topics_debtor + lang.topics
    if not person.company:  # private customers: no quotes for "our plant"
        return (lang.web_enquiry, lang.topics[2], lang.topics[3])
    return lang.topics


def write_mails(rng: random.Random, writer: MailWriter, people: list[Person], lang: DemoLanguage) -> list[Mail]:
    # A and B customers write more; everybody gets at least one thread.
    by_category: dict[Category | None, int] = {Category.A: 4, Category.B: 2}
    weights = [by_category.get(p.contact.category, 1) for p in people]
    chosen = list(people) + rng.choices(people, weights=weights, k=MAIL_THREADS - len(people))
    for person in chosen:
        writer.thread(person, _weighted(rng, _topics_for(person, lang)), rng.uniform(0, HISTORY_DAYS))
    used: set[str] = {f"{p.first} {p.last}" for p in people}
    numbers = {to_e164(n, "DE") or n for p in people for n in p.phones}
    for _ in range(UNKNOWN_SENDERS):  # not in the CRM yet: the pipeline makes them leads
        first, last, female = _pick_name(rng, lang.home_country, used)
        email = _address(rng, first, last, rng.choice(lang.free_mail))
        mobile = _mobile(rng, lang.home_country, rng.randint(0, 3), numbers)
        stranger = Person(Contact(), first, last, female, lang.english, [email], [mobile])
        writer.web_enquiry(stranger, rng.uniform(0, 30))
    support = writer.settings.mail.support_addresses
    if support:  # recent requests: new (no answer yet), pending (answered), open again (the customer wrote back)
        customers = [p for p in people if p.company and p.contact.role != Role.SUPPLIER]
        for index, person in enumerate(rng.sample(customers, SUPPORT_THREADS)):
            length = index % 3 + 1
            days_back = rng.uniform(0.2, 2) if length == 1 else rng.uniform(6, 12)
            writer.thread(person, lang.support_topics[index % len(lang.support_topics)], days_back,
                          support=support[0], length=length)
    first, last, _ = lang.namesake
    unknown_first, unknown_last, _ = _pick_name(rng, lang.home_country, used)
    writer.forward(f"{first} {last}", lang.forwards[0], rng.uniform(1, 5))
    writer.forward(f"{unknown_first} {unknown_last}", lang.forwards[1], rng.uniform(1, 5))
    writer.mime_bomb(rng.choice(people), writer.settings.mail.max_parts + 10, rng.uniform(1, 10))
    return sorted(writer.mails, key=lambda m: m.when)


def relay_address(settings: Settings) -> str | None:
    """An address in the first trusted relay network: the demo's mail comes in through our own server,
    as BCC copies and forwards do in real life, so staff mail is not taken for a spoof."""
    for net in settings.mail.trusted_relays:
        network = ipaddress.ip_network(net, strict=False)
        return str(next(iter(network.hosts()), network.network_address))
    return None


def deliver(factory: sessionmaker[Session], settings: Settings, mails: list[Mail]) -> None:
    """Through the real core: store every message, then process each one."""
    crm = settings.mail.crm_addresses[0]
    peer = relay_address(settings)
    with unit_of_work(factory) as session:
        ids = [accept(session, m.raw, Envelope(mail_from=m.mail_from, rcpt_to=(m.rcpt or crm,), peer=peer,
                                               source="demo")).inbound_id for m in mails]
    for inbound_id in ids:
        process(factory, settings, inbound_id)


def solve_one_ticket(session: Session, staff_id: int) -> None:
    """The customer wrote back with thanks: a colleague marks that ticket solved."""
    ticket = session.execute(select(Ticket).where(Ticket.state == TicketState.OPEN).order_by(Ticket.id)
                             .limit(1)).scalar_one_or_none()
    if ticket is not None:
        tickets.change(session, ticket, staff_id, TicketChanges(state=TicketState.SOLVED.value))


# --- calls and notes -----------------------------------------------------------------------------------

@dataclass
class DemoCall:
    at: datetime
    person: Person | None   # None: a number the CRM does not know
    number: str
    staff: tuple[int, str, str, str]
    inbound: bool
    answered: bool
    note: str | None


def plan_calls(rng: random.Random, now: datetime, people: list[Person], staff: list[tuple[int, str, str, str]],
               lang: DemoLanguage) -> list[DemoCall]:
    """The demo's calls, oldest first. A missed call from a known person is called back minutes to hours
    later. The last three are recent missed calls from three people (call-backs still owed), and two come from
    a number nobody knows (they wait under the unassigned calls)."""
    callable_people = [p for p in people if p.phones]
    planned = []
    for _ in range(CALLS):
        person = rng.choice(callable_people)
        answered = rng.random() < 0.8
        planned.append(DemoCall(business_time(rng, now, rng.uniform(2, HISTORY_DAYS)), person,
                                rng.choice(person.phones), rng.choice(staff[:2]), rng.random() < 0.6, answered,
                                rng.choice(lang.call_notes) if answered else None))
    for answered in (True, False):
        number = _mobile(rng, lang.home_country, 1, {to_e164(n, "DE") or n for p in people for n in p.phones})
        planned.append(DemoCall(business_time(rng, now, rng.uniform(1, 20)), None, number, rng.choice(staff[:2]),
                                True, answered, rng.choice(lang.call_notes) if answered else None))
    planned += call_backs(random.Random(len(planned)), now, planned, lang)
    planned.sort(key=lambda c: c.at)
    for person in rng.sample(callable_people, 3):
        planned.append(DemoCall(business_time(rng, now, rng.uniform(0, 1.5)), person, person.phones[0],
                                rng.choice(staff[:2]), True, False, None))
    return planned


# How long a colleague takes to call a missed caller back (minutes); most within the hour, a few the next day.
CALL_BACK_MINUTES = (6, 12, 20, 35, 50, 90, 180, 300, 1200)


def call_backs(rng: random.Random, now: datetime, calls: Sequence[DemoCall], lang: DemoLanguage) -> list[DemoCall]:
    """A call-back for each missed call from a known person, minutes to hours after it, by whom it rang for
    (those still due after ``now`` are owed). Its own random numbers: the rest of the demo stays as it was."""
    backs = []
    for call in calls:
        if call.inbound and not call.answered and call.person is not None:
            at = call.at + timedelta(minutes=rng.choice(CALL_BACK_MINUTES), seconds=rng.randint(0, 59))
            if at < now:
                backs.append(DemoCall(at, call.person, call.number, call.staff, False, True,
                                      rng.choice(lang.call_notes)))
    return backs


def record_calls(session: Session, settings: Settings, rng: random.Random, calls: list[DemoCall],
                 lang: DemoLanguage) -> None:
    """Each call as the phone system's webhook reports it: new, answer, hangup (or new, hangup when nobody
    answered). The timeline entry gets the subject and the note a colleague would give it."""
    for index, call in enumerate(calls):
        extension = call.staff[3]
        ours, theirs = extension, call.number
        caller, callee = (theirs, ours) if call.inbound else (ours, theirs)
        call_id = f"demo-{index + 1}"
        direction = Direction.IN if call.inbound else Direction.OUT

        def event(kind: Any, at: datetime, **more: Any) -> CallEvent:
            return CallEvent("demo", call_id, kind, at, direction=direction, from_number=caller,  # noqa: B023
                             to_number=callee, **more)  # noqa: B023

        # The events carry their own times; the missed-call reminders they set or complete (a call-back) are
        # stamped "now" by the reminders: moved back to the call's time, so a call-back takes minutes, not months.
        with backdated(session, call.at, (Reminder,)):
            apply_event(session, settings, event("new", call.at))
            ring = timedelta(seconds=rng.randint(4, 25))
            if call.answered:
                talk = timedelta(seconds=rng.randint(25, 1500))
                apply_event(session, settings, event("answer", call.at + ring, extension=extension))
                row, _ = apply_event(session, settings, event("hangup", call.at + ring + talk,
                                                              cause="normalClearing"))
            else:
                row, _ = apply_event(session, settings, event("hangup", call.at + ring + timedelta(seconds=15),
                                                              cause="noAnswer"))
        name = call.person.contact.name if call.person else lang.unknown_caller.format(number=call.number)
        interaction = session.get_one(Interaction, row.interaction_id)
        interaction.subject = lang.call_subjects[(call.inbound, call.answered)].format(name=name)
        interaction.excerpt = interaction.subject
        if call.note:
            interaction.text = call.note


def record_notes(session: Session, rng: random.Random, now: datetime, people: list[Person],
                 staff: list[tuple[int, str, str, str]], lang: DemoLanguage) -> None:
    for _ in range(NOTES):
        person = rng.choice(people)
        contact = session.get_one(Contact, person.contact.id)
        staff_id = rng.choice(staff[:2])[0]
        record_interaction(
            session, kind=InteractionKind.NOTE, direction=Direction.INTERNAL,
            occurred_at=business_time(rng, now, rng.uniform(0, HISTORY_DAYS)), subject=lang.note_subject,
            text=rng.choice(lang.note_texts), contacts=[(contact, "party")], staff_ids=[staff_id],
            created_by_id=staff_id,
        )


def create_reminders(session: Session, rng: random.Random, now: datetime, people: list[Person],
                     staff: list[tuple[int, str, str, str]], lang: DemoLanguage) -> None:
    """A few overdue, due-today and coming reminders for the first staff members and the team. The overdue
    ones count as already notified, so a demo never sends mail."""
    for index in range(12):
        person = rng.choice(people)
        due = now + timedelta(hours=rng.choice((-30, -4, -1, 2, 5, 26, 50, 74, 120)))
        assignee = None if index % 4 == 3 else staff[index % 2][0]
        session.add(Reminder(
            title=f"{lang.reminder_titles[index % len(lang.reminder_titles)]}: {person.contact.name}",
            reason="manual", due_at=due, fire_at=due if due > now else None, fired_at=due if due <= now else None,
            contact_id=person.contact.id, company_id=person.contact.company_id, assignee_id=assignee,
            created_by_id=staff[0][0]))


# --- entry point ---------------------------------------------------------------------------------------

@contextmanager
def quiet_info_logs(names: Sequence[str] = ("crm_inbox",)) -> Iterator[None]:
    """Intake, worker, tickets and calls log every message at INFO: a few hundred lines of seeding would
    bury the service's start-up lines. Warnings still show; the levels are restored afterwards."""
    loggers = [logging.getLogger(name) for name in names]
    before = [logger.level for logger in loggers]
    for logger in loggers:
        if logger.getEffectiveLevel() < logging.WARNING:
            logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for logger, level in zip(loggers, before, strict=True):
            logger.setLevel(level)


def build_demo(factory: sessionmaker[Session], settings: Settings, *, seed: int = 7,
               language: str = "de") -> DemoLogin:
    """Fill an empty, migrated database with demo data in one language (``de`` or ``en``); returns the
    admin's login."""
    if language not in LANGUAGES:
        raise ValueError(f"demo language must be one of {', '.join(LANGUAGES)}, not {language!r}")
    lang = demo_language(language)
    # Demo addresses are made up: nothing the seeding does may send them mail.
    settings = replace(settings, tickets={"acknowledge": False})
    rng = random.Random(seed)
    domain = settings.mail.staff_domains[0] if settings.mail.staff_domains else lang.default_domain
    password = secrets.token_urlsafe(12)  # never a well-known password, even on a demo
    now = utcnow()
    with quiet_info_logs():
        with unit_of_work(factory) as session:
            staff = create_staff(session, domain, password, lang)
            people = create_companies_and_people(session, settings, rng, [s[0] for s in staff], lang)
        # Teams and months of history for the reports, from a random stream of their own (what the demo had before
        # stays the same for the same seed): tickets and calls now, deals and invoices after the sales.
        history = History(factory, regional_settings(settings, language), random.Random(seed + 1), now, language)
        support = settings.mail.support_addresses
        teams = history.before(staff, domain, MailRoute(support[0] if support else settings.mail.crm_addresses[0],
                                                        settings.mail.crm_addresses[0], relay_address(settings)),
                               lang.call_subjects)
        writer = MailWriter(rng, settings, staff, domain, now, lang)
        deliver(factory, settings, write_mails(rng, writer, people, lang))
        with unit_of_work(factory) as session:
            solve_one_ticket(session, staff[0][0])
            record_calls(session, settings, rng, plan_calls(rng, now, people, staff, lang), lang)
            record_notes(session, rng, now, people, staff, lang)
            create_reminders(session, rng, now, people, staff, lang)
            create_sales(session, regional_settings(settings, language), rng, people, [s[0] for s in staff],
                         now.date(), language)
            create_campaigns(session, regional_settings(settings, language), [s[0] for s in staff], now, language)
            history.after(session, teams, lang.call_subjects)
    return DemoLogin(email=staff[0][2], password=password)
