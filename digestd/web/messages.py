"""The emails the web sends: "confirm your subscription" and "you are already subscribed".

Anyone can make us send these to any address, so they carry nothing the requester typed
(not even the name): the sign-up form cannot be used to mail chosen text to strangers.
They speak in the site's name (`[web] site_name`), the one the pages show.
"""

from __future__ import annotations

from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr

from digestd.config import MailSettings
from digestd.mail.render import clean_header
from digestd.web.pages import Pages


def _message(mail: MailSettings, *, to: str, subject: str, body: str, now: datetime) -> EmailMessage:
    message = EmailMessage()
    message["From"] = clean_header(mail.from_)
    message["To"] = clean_header(to)
    message["Subject"] = clean_header(subject)
    message["Date"] = format_datetime(now)
    domain = parseaddr(mail.from_)[1].rpartition("@")[2] or "localhost"
    message["Message-ID"] = make_msgid(domain=domain)
    message["Auto-Submitted"] = "auto-generated"
    # 7bit keeps the long link on one line even in a raw view (quoted-printable would fold it)
    message.set_content(body, cte="7bit" if body.isascii() else "quoted-printable")
    return message


def compose_confirmation(pages: Pages, mail: MailSettings, *, to: str, link: str, now: datetime) -> EmailMessage:
    body = pages.render_text("confirm_email.txt", link=link, base_url=mail.base_url)
    return _message(mail, to=to, subject=f"Please confirm your subscription to {pages.site.name}", body=body, now=now)


def compose_already_subscribed(
    pages: Pages, mail: MailSettings, *, to: str, manage_link: str, now: datetime
) -> EmailMessage:
    body = pages.render_text("already_email.txt", manage_link=manage_link, base_url=mail.base_url)
    return _message(mail, to=to, subject=f"You are already subscribed to {pages.site.name}", body=body, now=now)
