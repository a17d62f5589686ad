import datetime as dt

import pytest

from stf_fusion.core.dates import date_from_name, dates_for_files, parse_date, parse_date_list
from stf_fusion.core.errors import InputError


@pytest.mark.parametrize("name, expected", [
    ("fine_2021-04-01.tif", dt.date(2021, 4, 1)),
    ("/data/x/coarse_2021_06_30.tif", dt.date(2021, 6, 30)),
    ("MOD09GA.A2001281.h09v05.061.2020076054119.tif", dt.date(2001, 10, 8)),
    ("LC08_L2SP_044034_20210401_20210410_02_T1_SR.tif", dt.date(2021, 4, 1)),  # acquisition, not processing
    ("LT50440342001281XXX00_sr.tif", dt.date(2001, 10, 8)),
    ("scene_2020366.tif", dt.date(2020, 12, 31)),  # leap year, day 366
    ("img_20211345_20210203.tif", dt.date(2021, 2, 3)),  # 2021-13-45 is not a date: skipped
])
def test_date_from_name(name, expected):
    assert date_from_name(name) == expected


@pytest.mark.parametrize("name", ["fine.tif", "scene_2021366.tif", "x_12345.tif"])
def test_no_date_in_name(name):
    assert date_from_name(name) is None


def test_parse_user_dates():
    assert parse_date_list("2021-04-01, 20210417;2021123") == [
        dt.date(2021, 4, 1), dt.date(2021, 4, 17), dt.date(2021, 5, 3)]
    assert parse_date_list("  ") == []
    with pytest.raises(InputError, match="'2021-02-30' is not a date"):
        parse_date("2021-02-30")


def test_dates_for_files_names_the_file_without_date():
    with pytest.raises(InputError, match="no_date_here.tif"):
        dates_for_files(["a_2021-01-01.tif", "/x/no_date_here.tif"], what="fine")
    with pytest.raises(InputError, match="2 dates given for 1 fine"):
        dates_for_files(["a.tif"], [dt.date(2021, 1, 1), dt.date(2021, 1, 2)], what="fine")
