from cks.wording import counted, noun_for


def test_one_takes_the_noun_as_given_and_any_other_count_an_s():
    assert counted(1, "key") == "1 key"
    assert counted(0, "key") == "0 keys"
    assert counted(2, "rejection notice") == "2 rejection notices"
    assert noun_for(1, "file") == "file"
    assert noun_for(7, "file") == "files"
