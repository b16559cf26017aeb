"""Import a CSV file into a list from the shell, through the same service as the web page.

For scripts and for files on the server. The mapping is the guesses
unless ``--map`` says otherwise; it is printed before anything is written. The import runs
in this process (no worker needed) and prints its progress.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from django.core.exceptions import ValidationError
from django.core.files import File
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils.translation import gettext as _

from contacts import importing, services
from contacts.models import ContactImport, MailingList
from contacts.services import imports

# Printing every batch of a million-row file floods a terminal; once a second is enough.
PROGRESS_EVERY_SECONDS = 1.0
REFUSED_ROWS_SHOWN = 10


def _messages(exc: ValidationError) -> str:
    return " ".join(exc.messages)


class Command(BaseCommand):
    help = (
        "Import contacts from a CSV file into a list. Columns are guessed from their names "
        "(Mailchimp, Unisender, listmonk and Mautic exports are recognised) unless --map "
        "names them. People who unsubscribed, bounced or complained are never subscribed "
        "again (--left-policy update only updates their details); addresses on the "
        "suppression list are refused."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", help=_("The CSV file."))
        parser.add_argument(
            "--list", required=True, dest="list_name", help=_("The name of the list.")
        )
        parser.add_argument(
            "--create-list",
            action="store_true",
            help=_("Create the list when no list has this name (otherwise that is an error)."),
        )
        parser.add_argument(
            "--mode",
            choices=ContactImport.Mode.values,
            default=ContactImport.Mode.ADD_UPDATE,
            help=_(
                "add: new contacts only, known ones keep their data; update: known contacts "
                "only; add_update (the default): both."
            ),
        )
        parser.add_argument(
            "--left-policy",
            choices=ContactImport.LeftPolicy.values,
            default=ContactImport.LeftPolicy.SKIP,
            help=_(
                "Contacts who unsubscribed, bounced or complained before: skip (the default) "
                "leaves them as they are; update updates their names and fields like other "
                "contacts' under --mode. Either way they stay unsubscribed."
            ),
        )
        parser.add_argument(
            "--map",
            action="append",
            default=[],
            metavar="COLUMN=FIELD",
            help=_(
                "What a column holds (repeatable). COLUMN is its header or its position from "
                "1; FIELD is email, first_name, last_name, a custom field key, new:KEY:TYPE "
                "(TYPE text, number, date or boolean) or ignore. Other columns keep their "
                "guess."
            ),
        )
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help=_("Check the file and the mapping, print the mapping, import nothing."),
        )

    def handle(self, *args: Any, **options: Any) -> None:
        path = Path(options["file"])
        if not path.is_file():
            raise CommandError(_("No such file: %(path)s") % {"path": path})
        chosen = self._parse_map(options["map"])

        def open_file() -> Any:
            return path.open("rb")

        try:
            header = importing.preview_csv(open_file).header
        except importing.ImportFileError as exc:
            raise CommandError(str(exc)) from None
        try:
            mapping = imports.contact_import_mapping_resolve(header, chosen)
            imports.contact_import_mapping_clean(header, mapping)
        except ValidationError as exc:
            raise CommandError(_messages(exc)) from None
        self.stdout.write(_("Columns (from --map, or guessed from their names):"))
        for column, what in imports.contact_import_mapping_describe(header, mapping):
            self.stdout.write(f"  {column} → {what}")
        mailing_list = self._mailing_list(options["list_name"], options["create_list"])
        if options["dry_run"]:
            self.stdout.write(_("Dry run: nothing was imported."))
            return

        with path.open("rb") as fh:
            upload = File(fh, name=os.path.basename(path))
            try:
                contact_import = services.contact_import_create(
                    mailing_list or self._create_list(options["list_name"]),
                    upload,
                    mapping=mapping,
                    mode=options["mode"],
                    left_policy=options["left_policy"],
                    enqueue=False,
                )
            except ValidationError as exc:
                raise CommandError(_messages(exc)) from None
        self.stdout.write(
            _(
                "Importing into “%(list)s” (import %(id)s, mode %(mode)s, contacts who "
                "unsubscribed before: %(policy)s)…"
            )
            % {
                "list": contact_import.mailing_list.name,
                "id": contact_import.pk,
                "mode": options["mode"],
                "policy": options["left_policy"],
            }
        )
        services.contact_import_run(contact_import.pk, on_progress=self._progress_printer())
        self._report(ContactImport.objects.get(pk=contact_import.pk))

    def _parse_map(self, pairs: list[str]) -> dict[str, str]:
        chosen: dict[str, str] = {}
        for pair in pairs:
            column, sep, target = pair.partition("=")
            if not sep or not column.strip() or not target.strip():
                raise CommandError(
                    _('--map takes COLUMN=FIELD, like --map "E-mail=email"; got “%(pair)s”.')
                    % {"pair": pair}
                )
            if column.strip() in chosen:
                raise CommandError(
                    _("The column “%(column)s” is given twice in --map.")
                    % {"column": column.strip()}
                )
            chosen[column.strip()] = target.strip()
        return chosen

    def _mailing_list(self, name: str, create: bool) -> MailingList | None:
        """The list named ``name``; None when it is to be created (after every check)."""
        found = MailingList.objects.filter(name=name).first()
        if found is None and not create:
            raise CommandError(
                _("There is no list named “%(name)s”. Check the name, or add --create-list.")
                % {"name": name}
            )
        return found

    def _create_list(self, name: str) -> MailingList:
        try:
            mailing_list = services.mailing_list_create(name=name)
        except ValidationError as exc:
            raise CommandError(_messages(exc)) from None
        self.stdout.write(_("Created the list “%(name)s”.") % {"name": name})
        return mailing_list

    def _progress_printer(self) -> Any:
        started = time.monotonic()
        last = [0.0]

        def show(done: int, total: int) -> None:
            now = time.monotonic()
            if now - last[0] < PROGRESS_EVERY_SECONDS and done < total:
                return
            last[0] = now
            rate = done / max(now - started, 1e-6)
            percent = done * 100 // total if total else 100
            self.stdout.write(
                _("  %(done)s / %(total)s rows (%(percent)s%%), %(rate)s rows/s")
                % {"done": done, "total": total, "percent": percent, "rate": round(rate)}
            )

        return show

    def _report(self, item: ContactImport) -> None:
        if item.status == ContactImport.Status.FAILED:
            raise CommandError(_("The import failed: %(error)s") % {"error": item.error})
        if item.status == ContactImport.Status.CANCELLED:
            raise CommandError(
                _(
                    "The import was cancelled after %(rows)s rows; what was written before "
                    "stays. Importing the same file again is safe."
                )
                % {"rows": item.rows_done}
            )
        self.stdout.write(
            _(
                "Done: %(rows)s rows; %(created)s created, %(updated)s updated, "
                "%(skipped)s skipped, %(refused)s refused."
            )
            % {
                "rows": item.rows_done,
                "created": item.created,
                "updated": item.updated,
                "skipped": item.skipped,
                "refused": item.refused,
            }
        )
        for row in item.refused_rows[:REFUSED_ROWS_SHOWN]:
            self.stdout.write(
                _("  refused row %(row)s (%(email)s): %(reason)s")
                % {"row": row["row"], "email": row["email"] or "—", "reason": row["reason"]}
            )
        for row in item.skipped_rows[:REFUSED_ROWS_SHOWN]:
            if row.get("updated"):
                line = _("  updated row %(row)s (%(email)s): %(reason)s")
            else:
                line = _("  skipped row %(row)s (%(email)s): %(reason)s")
            self.stdout.write(
                line % {"row": row["row"], "email": row["email"], "reason": row["reason"]}
            )
        more = item.refused - min(item.refused, REFUSED_ROWS_SHOWN)
        if more:
            self.stdout.write(
                _("  … and %(more)s more refused rows: see the import's page in the web UI.")
                % {"more": more}
            )
