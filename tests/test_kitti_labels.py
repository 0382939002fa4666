"""KITTI label-line parsing: valid lines with hand-checked values, and precise errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from taskweight.data.kitti_labels import (
    KittiObject,
    format_label_line,
    parse_label_file,
    parse_label_line,
    parse_label_text,
)
from taskweight.errors import DataFormatError

# Lines in the format of KITTI's training/label_2 files.
CAR = "Car 0.00 0 -1.58 587.01 173.33 614.12 200.12 1.65 1.67 3.64 -0.65 1.71 46.70 -1.59"
PEDESTRIAN = "Pedestrian 0.00 0 -0.20 712.40 143.00 810.73 307.92 1.89 0.48 1.20 1.84 1.47 8.41 0.01"
CYCLIST = "Cyclist 0.33 1 1.94 330.60 176.09 355.61 213.60 1.72 0.50 1.95 -12.63 1.88 34.09 1.54"
DONTCARE = "DontCare -1 -1 -10 503.89 169.71 590.61 190.13 -1 -1 -1 -1000 -1000 -1000 -10"


def test_car_line_values() -> None:
    obj = parse_label_line(CAR, "x.txt", 1)
    assert obj.type == "Car"
    assert obj.truncated == 0.0
    assert obj.occluded == 0 and isinstance(obj.occluded, int)
    assert obj.alpha == pytest.approx(-1.58)
    assert obj.box == pytest.approx((587.01, 173.33, 614.12, 200.12))
    assert obj.dimensions == pytest.approx((1.65, 1.67, 3.64))
    assert obj.location == pytest.approx((-0.65, 1.71, 46.70))
    assert obj.rotation_y == pytest.approx(-1.59)
    assert obj.score is None
    assert not obj.is_dontcare


def test_pedestrian_and_cyclist_lines() -> None:
    ped = parse_label_line(PEDESTRIAN, "x.txt", 2)
    assert ped.type == "Pedestrian"
    assert ped.box == pytest.approx((712.40, 143.00, 810.73, 307.92))
    assert ped.dimensions == pytest.approx((1.89, 0.48, 1.20))
    assert ped.line == 2
    cyc = parse_label_line(CYCLIST, "x.txt", 3)
    assert cyc.type == "Cyclist"
    assert cyc.truncated == pytest.approx(0.33)
    assert cyc.occluded == 1
    assert cyc.location == pytest.approx((-12.63, 1.88, 34.09))


def test_dontcare_line() -> None:
    obj = parse_label_line(DONTCARE, "x.txt", 4)
    assert obj.is_dontcare
    assert obj.occluded == -1 and obj.truncated == -1 and obj.alpha == -10
    assert obj.box == pytest.approx((503.89, 169.71, 590.61, 190.13))
    assert obj.location == (-1000, -1000, -1000)


def test_result_line_with_score_keeps_the_score() -> None:
    obj = parse_label_line(CAR + " 0.8734", "results/000001.txt", 1)
    assert obj.score == pytest.approx(0.8734)
    assert obj.box == pytest.approx((587.01, 173.33, 614.12, 200.12))


def test_format_round_trip() -> None:
    for line in (CAR, PEDESTRIAN, CYCLIST):
        assert format_label_line(parse_label_line(line)) == line


def _error(text: str, path: str = "data/label_2/000042.txt", line_no: int = 7) -> DataFormatError:
    with pytest.raises(DataFormatError) as info:
        parse_label_line(text, path, line_no)
    err = info.value
    assert err.path == Path(path)
    assert err.line == line_no
    assert str(err).startswith(f"{Path(path)}:{line_no}: ")
    return err


@pytest.mark.parametrize(
    "text, fragment",
    [
        (" ".join(CAR.split()[:14]), "got 14"),
        (CAR + " 0.5 0.6", "got 17"),
        ("Car", "got 1"),
    ],
)
def test_wrong_column_count(text: str, fragment: str) -> None:
    assert fragment in _error(text).reason


def test_text_in_numeric_column_names_the_column() -> None:
    tokens = CAR.split()
    tokens[7] = "abc"  # bottom
    err = _error(" ".join(tokens))
    assert "bottom" in err.reason and "abc" in err.reason


@pytest.mark.parametrize("index, value", [(4, "nan"), (13, "inf"), (15, "nan")])
def test_non_finite_values(index: int, value: str) -> None:
    tokens = (CAR + " 0.5").split()
    tokens[index] = value
    assert "not finite" in _error(" ".join(tokens)).reason


def test_inverted_boxes() -> None:
    tokens = CAR.split()
    tokens[4], tokens[6] = tokens[6], tokens[4]  # left <-> right
    assert "right" in _error(" ".join(tokens)).reason
    tokens = CAR.split()
    tokens[5], tokens[7] = tokens[7], tokens[5]  # top <-> bottom
    assert "bottom" in _error(" ".join(tokens)).reason
    tokens = CAR.split()
    tokens[6] = tokens[4]  # zero width
    _error(" ".join(tokens))


def test_bad_occluded_and_numeric_type() -> None:
    tokens = CAR.split()
    tokens[2] = "1.5"
    assert "occluded" in _error(" ".join(tokens)).reason
    tokens = CAR.split()
    tokens[0] = "3"
    assert "type" in _error(" ".join(tokens)).reason


def test_file_with_trailing_empty_lines(tmp_path: Path) -> None:
    path = tmp_path / "000001.txt"
    path.write_text(f"{CAR}\n{PEDESTRIAN}\n{DONTCARE}\n\n  \n")
    objs = parse_label_file(path)
    assert [o.type for o in objs] == ["Car", "Pedestrian", "DontCare"]
    assert [o.line for o in objs] == [1, 2, 3]
    assert all(isinstance(o, KittiObject) for o in objs)


def test_empty_file_means_no_objects(tmp_path: Path) -> None:
    path = tmp_path / "000002.txt"
    path.write_text("")
    assert parse_label_file(path) == []


def test_error_in_a_file_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "000003.txt"
    path.write_text(f"{CAR}\n{PEDESTRIAN}\nCar 0.00 0 -1.58 587.01 173.33\n")
    with pytest.raises(DataFormatError) as info:
        parse_label_file(path)
    assert info.value.path == path and info.value.line == 3
    assert str(info.value).startswith(f"{path}:3:")


def test_empty_line_in_the_middle_is_an_error() -> None:
    with pytest.raises(DataFormatError) as info:
        parse_label_text(f"{CAR}\n\n{CYCLIST}\n", "f.txt")
    assert info.value.line == 2 and "empty" in info.value.reason


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataFormatError) as info:
        parse_label_file(tmp_path / "nope.txt")
    assert "not found" in str(info.value)
