"""Acquisition dates: parsing from file names and from user text.

Recognised in a file name, first match wins, in this order:

1. ``YYYY-MM-DD`` (also ``YYYY_MM_DD``), e.g. ``fine_2021-04-01.tif``;
2. a MODIS ``A`` + ``YYYYDDD`` token, e.g. ``MOD09GA.A2001281.h09v05.061.tif``;
3. a Landsat scene id (``LT50440342001281XXX00``): the ``YYYYDDD`` after path/row;
4. ``YYYYMMDD`` as a separate run of 8 digits, e.g. ``LC08_L2SP_044034_20210401_20210410_02_T1``
   (the acquisition date comes before the processing date, so the first one is used);
5. ``YYYYDDD`` as a separate run of 7 digits.

Candidates that are not real calendar dates (month 13, day-of-year 400) are skipped.
"""
from __future__ import annotations

import datetime as _dt
import os
import re

from .errors import InputError

_ISO = re.compile(r"(?<!\d)(\d{4})[-_](\d{2})[-_](\d{2})(?!\d)")
_MODIS = re.compile(r"(?:^|[._\-])A(\d{4})(\d{3})(?!\d)")
_LANDSAT_ID = re.compile(r"L[CTEMO]\d\d{6}(\d{4})(\d{3})")
_YMD = re.compile(r"(?<!\d)(\d{4})(\d{2})(\d{2})(?!\d)")
_YDOY = re.compile(r"(?<!\d)(\d{4})(\d{3})(?!\d)")


def _ymd(y: str, m: str, d: str) -> _dt.date | None:
    try:
        date = _dt.date(int(y), int(m), int(d))
    except ValueError:
        return None
    return date if 1950 <= date.year <= 2100 else None


def _ydoy(y: str, doy: str) -> _dt.date | None:
    year, day = int(y), int(doy)
    if not (1950 <= year <= 2100) or not 1 <= day <= (366 if _leap(year) else 365):
        return None
    return _dt.date(year, 1, 1) + _dt.timedelta(days=day - 1)


def _leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def date_from_name(path: str) -> _dt.date | None:
    """Return the acquisition date found in the file name of ``path``, or None."""
    name = os.path.basename(path)
    for pattern, build in ((_ISO, _ymd), (_MODIS, _ydoy), (_LANDSAT_ID, _ydoy), (_YMD, _ymd), (_YDOY, _ydoy)):
        for match in pattern.finditer(name):
            date = build(*match.groups())
            if date is not None:
                return date
    return None


def parse_date(text: str) -> _dt.date:
    """Parse one user-given date: ``YYYY-MM-DD``, ``YYYYMMDD`` or ``YYYYDDD``."""
    token = text.strip()
    date = None
    if re.fullmatch(r"\d{4}[-_/]\d{2}[-_/]\d{2}", token):
        date = _ymd(token[:4], token[5:7], token[8:10])
    elif re.fullmatch(r"\d{8}", token):
        date = _ymd(token[:4], token[4:6], token[6:8])
    elif re.fullmatch(r"\d{7}", token):
        date = _ydoy(token[:4], token[4:])
    if date is None:
        raise InputError(f"'{text}' is not a date: use YYYY-MM-DD, YYYYMMDD or YYYYDDD.")
    return date


def parse_date_list(text: str | None) -> list[_dt.date]:
    """Parse a comma, semicolon or whitespace separated list of dates; empty text gives an empty list."""
    if not text or not text.strip():
        return []
    return [parse_date(token) for token in re.split(r"[,;\s]+", text.strip()) if token]


def dates_for_files(paths: list[str], dates: list[_dt.date] | None = None, what: str = "raster") -> list[_dt.date]:
    """Dates of ``paths``: the given list (same length) or else parsed from each file name.

    Raises :class:`InputError` naming the file whose name holds no date.
    """
    if dates:
        if len(dates) != len(paths):
            raise InputError(f"{len(dates)} dates given for {len(paths)} {what} files; give one date per file.")
        return list(dates)
    result = []
    for path in paths:
        date = date_from_name(path)
        if date is None:
            raise InputError(
                f"No date found in the {what} file name '{os.path.basename(path)}' ({path}). Put the date in the "
                "name (YYYY-MM-DD, YYYYMMDD or YYYYDDD) or give the dates explicitly."
            )
        result.append(date)
    return result
