"""First-start settings for office apps in a sandbox's private HOME.

A fresh LibreOffice profile greets every run with a "Tip of the Day" dialog,
a "you are running this version for the first time" bar and, after an
unclean stop, a document-recovery dialog. None of that is the task, and each
one shifts the screen a model or a scripted step expects, so the profile gets
a few settings before the app first starts. Written on the host into the
sandbox's HOME, which only this sandbox's apps see.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from xml.sax.saxutils import escape

LIBREOFFICE_PROGRAMS = {"libreoffice", "soffice", "localc", "lowriter", "loimpress", "lodraw", "soffice.bin"}
PROFILE = Path(".config/libreoffice/4/user/registrymodifications.xcu")
# (path, property, type, value): settings of a person who has used LibreOffice before
_SETTINGS = (
    ("/org.openoffice.Office.Common/Misc", "ShowTipOfTheDay", "boolean", "false"),
    ("/org.openoffice.Office.Common/Misc", "FirstRun", "boolean", "false"),
    ("/org.openoffice.Setup/Product", "ooSetupLastVersion", "string", "99.0"),
    ("/org.openoffice.Office.Recovery/AutoSave", "Enabled", "boolean", "false"),
    ("/org.openoffice.Office.Recovery/RecoveryInfo", "Enabled", "boolean", "false"),
    ("/org.openoffice.Office.Common/Save/Document", "WarnAlienFormat", "boolean", "false"),
    ("/org.openoffice.Office.Common/Misc", "UseLocking", "boolean", "false"),  # no .~lock files left in shares
)



def uses_libreoffice(argvs: Iterable[Sequence[str]]) -> bool:
    return any(argv and Path(argv[0]).name in LIBREOFFICE_PROGRAMS for argv in argvs)


def libreoffice_profile(work_dir: str | None = None) -> str:
    """The registry settings; ``work_dir`` becomes the folder Open and Save As start in."""
    settings = list(_SETTINGS)
    if work_dir:
        settings.append(("/org.openoffice.Office.Paths/Variables", "Work", "string", Path(work_dir).as_uri()))
    items = "".join(
        f'<item oor:path="{escape(path, {chr(34): "&quot;"})}"><prop oor:name="{name}" oor:op="fuse">'
        f'<value>{escape(value)}</value></prop></item>\n'
        for path, name, _kind, value in settings
    )
    return ('<?xml version="1.0" encoding="UTF-8"?>\n'
            '<oor:items xmlns:oor="http://openoffice.org/2001/registry" '
            'xmlns:xs="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">\n'
            f"{items}</oor:items>\n")


def prepare_home(home: Path, argvs: Iterable[Sequence[str]], shares: Sequence[str] = ()) -> None:
    """Write first-start settings for the office apps among ``argvs`` (never over a profile already there).

    The first shared folder becomes the apps' working folder, so a file saved
    without choosing a folder lands where the user gets it back.
    """
    if uses_libreoffice(argvs):
        target = Path(home) / PROFILE
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(libreoffice_profile(shares[0] if shares else None), encoding="utf-8")
