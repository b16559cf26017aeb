import pytest

from tracking import tokens


def test_round_trip():
    assert tokens.read_token("open", tokens.make_token("open", 123456)) == (123456, None)
    assert tokens.read_token("click", tokens.make_token("click", 5, 3)) == (5, 3)


def test_altered_token_is_refused():
    token = tokens.make_token("open", 10)
    value, sig = token.split(".")
    forged = f"{int(value, 36) + 1:x}.{sig}"
    with pytest.raises(tokens.BadToken):
        tokens.read_token("open", forged)
    with pytest.raises(tokens.BadToken):
        tokens.read_token("open", "garbage")


def test_token_of_one_kind_is_no_good_for_another():
    token = tokens.make_token("open", 10)
    with pytest.raises(tokens.BadToken):
        tokens.read_token("unsubscribe", token)
