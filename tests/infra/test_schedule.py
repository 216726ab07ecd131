"""Active hours become an opening and a closing moment; a window that ends at midnight or
runs past it closes on the next day."""

import pytest

from ownllm.schedule import Moment, next_day, window_moments

WEEKDAYS = ("MON", "TUE", "WED", "THU", "FRI")


def test_a_window_inside_one_day_opens_and_closes_on_the_same_days():
    assert window_moments(8, 20, WEEKDAYS) == (Moment(8, WEEKDAYS), Moment(20, WEEKDAYS))


def test_a_window_ending_at_midnight_closes_at_zero_hours_the_next_day():
    """Friday 08:00-24:00 closes Saturday 00:00; hour 0 on Friday would fire before it opened."""
    opening, closing = window_moments(8, 24, WEEKDAYS)
    assert opening == Moment(8, WEEKDAYS)
    assert closing == Moment(0, ("TUE", "WED", "THU", "FRI", "SAT"))
    assert closing.week_day == "TUE,WED,THU,FRI,SAT"


def test_a_window_crossing_midnight_closes_the_next_morning():
    opening, closing = window_moments(20, 4, ("FRI", "SAT"))
    assert (opening.hour, opening.week_day) == (20, "FRI,SAT")
    assert (closing.hour, closing.week_day) == (4, "SAT,SUN")


def test_sunday_nights_close_on_monday_listed_in_week_order():
    _, closing = window_moments(18, 24, ("SAT", "SUN"))
    assert closing.week_day == "MON,SUN"


def test_a_window_from_midnight_to_midnight_closes_at_the_end_of_each_day():
    assert window_moments(0, 24, ("WED",)) == (Moment(0, ("WED",)), Moment(0, ("THU",)))


def test_the_week_wraps_from_sunday_to_monday():
    assert [next_day(d) for d in ("MON", "SAT", "SUN")] == ["TUE", "SUN", "MON"]


@pytest.mark.parametrize(
    "start, end, days, message",
    [
        (8, 8, WEEKDAYS, "active hours 8-8: hours are 0-24 and the window cannot be empty"),
        (24, 4, WEEKDAYS, "active hours 24-4: hours are 0-24 and the window cannot be empty"),
        (8, 25, WEEKDAYS, "active hours 8-25: hours are 0-24 and the window cannot be empty"),
        (8, 20, ("FRIDAY",), "active days ('FRIDAY',): use MON, TUE, WED, THU, FRI, SAT, SUN"),
        (8, 20, (), "active days (): use MON, TUE, WED, THU, FRI, SAT, SUN"),
    ],
)
def test_an_impossible_window_is_refused_with_what_is_accepted(start, end, days, message):
    with pytest.raises(ValueError) as caught:
        window_moments(start, end, days)
    assert str(caught.value) == message
