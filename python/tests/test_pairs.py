import json

import pytest

from safeneuron_trl.pairs import PairsFileError, parse_row, read_pairs, truncate


def test_truncation_cuts_the_completion_end_then_the_prompt_start():
    full = list(range(10))            # prompt 0..3, completion 4..9
    assert truncate(4, full, None) == ([0, 1, 2, 3], [4, 5, 6, 7, 8, 9])
    assert truncate(4, full, 10) == ([0, 1, 2, 3], [4, 5, 6, 7, 8, 9])
    assert truncate(4, full, 7) == ([0, 1, 2, 3], [4, 5, 6])          # the completion's end goes first
    assert truncate(4, full, 4) == ([1, 2, 3], [4])                    # one completion token is always kept
    assert truncate(4, full, 2) == ([3], [4])                          # the prompt's start goes
    with pytest.raises(ValueError):
        truncate(4, full, 1)


def test_row_formats():
    assert parse_row({"prompt": "p", "chosen": "a", "rejected": "b", "system": "s"})[1] == [
        {"role": "system", "content": "s"}, {"role": "user", "content": "p"}]
    fmt, prompt, chosen, rejected = parse_row({"prompt": "p", "response_0": "x", "response_1": "y",
                                               "safer_response_id": 1})
    assert fmt == "pku-saferlhf" and chosen[0]["content"] == "y" and rejected[0]["content"] == "x"
    assert parse_row({"prompt": "p", "response_0": "x", "response_1": "y", "better_response_id": 0})[2][0][
        "content"] == "x"
    implicit = parse_row({"chosen": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}],
                          "rejected": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "b"}]})
    assert implicit[0] == "conversational" and implicit[1] == [{"role": "user", "content": "q"}]
    parts = parse_row({"prompt": [{"role": "user", "content": [{"type": "text", "text": "a"}, {"text": "b"}]}],
                       "chosen": [{"role": "assistant", "content": "x"}],
                       "rejected": [{"role": "assistant", "content": "y"}]})
    assert parts[1][0]["content"] == "ab"


def write(tmp_path, rows):
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return str(path)


@pytest.mark.parametrize("row, message", [
    ("{not json", r":1: not valid JSON"),
    ("[1, 2]", r":1: not a JSON object"),
    ({"chosen": "a", "rejected": "b"}, r":1: field 'prompt': missing"),
    ({"prompt": 3, "chosen": "a", "rejected": "b"}, r":1: field 'prompt': expected a string, found a number"),
    ({"prompt": "p", "response_0": "x", "response_1": "y", "safer_response_id": 2},
     r"field 'safer_response_id': expected 0 or 1"),
    ({"prompt": "p", "response_0": "x", "response_1": "y"}, r"field 'safer_response_id': missing"),
    ({"prompt": [{"role": "assistant", "content": "q"}], "chosen": [{"role": "assistant", "content": "a"}],
      "rejected": [{"role": "assistant", "content": "b"}]}, r"field 'prompt\[0\].role': the prompt's last turn"),
    ({"prompt": [{"role": "user", "content": "q"}], "chosen": [{"role": "tool", "content": "a"}],
      "rejected": [{"role": "assistant", "content": "b"}]}, r"field 'chosen\[0\].role': 'tool' is not"),
])
def test_bad_rows_name_file_line_and_field(tmp_path, row, message):
    path = write(tmp_path, [row])
    with pytest.raises(PairsFileError, match=message) as caught:
        read_pairs(path)
    assert str(caught.value).startswith(path + ":1: ")


def test_identical_answers_are_skipped_and_counted(tmp_path):
    path = write(tmp_path, [{"prompt": "p", "chosen": "a", "rejected": "a"},
                            {"prompt": "p", "chosen": "a", "rejected": "b"}])
    rows, summary = read_pairs(path)
    assert len(rows) == 1 and rows[0][0] == 2
    assert "skipped 1: identical chosen and rejected (lines 1)" in summary
    with pytest.raises(PairsFileError, match="no usable preference pairs"):
        read_pairs(write(tmp_path, [{"prompt": "p", "chosen": "a", "rejected": "a"}]))
