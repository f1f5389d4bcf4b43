"""Column positions of the strict YAML loader: keys, list items and the first character of values."""

from __future__ import annotations

from lecis.yaml_loader import parse_yaml

TEXT = """\
experiment: demo
tasks:
  - name: "quoted value"
    when: bench-1/do1.mg_l > 3
    do: [{bench-1/aeration: on}, {log: 'hi {x}'}]
  - note: |
      block text
"""


def test_keys_items_and_values_have_line_and_column() -> None:
    doc = parse_yaml(TEXT, "s.yaml")
    assert doc.position_of(("tasks",)) == (2, 1)
    assert doc.position_of(("tasks", 0, "when")) == (4, 5)
    assert doc.value_position(("tasks", 0, "when")) == (4, 11)
    assert doc.value_position(("tasks", 0, "name")) == (3, 12)  # inside the quotes
    assert doc.position_of(("tasks", 0, "do", 0, "bench-1/aeration")) == (5, 11)
    assert doc.value_position(("tasks", 0, "do", 0, "bench-1/aeration")) == (5, 29)
    assert doc.value_position(("tasks", 0, "do", 1, "log")) == (5, 41)
    assert doc.value_position(("tasks", 1, "note")) == (7, 7)  # the block's first content line
    assert doc.data["tasks"][0]["do"][0] == {"bench-1/aeration": "on"}  # YAML 1.2: `on` stays a string


def test_absent_paths_fall_back_to_the_nearest_parent() -> None:
    doc = parse_yaml(TEXT, "s.yaml")
    assert doc.position_of(("tasks", 0, "missing")) == (3, 5)
    assert doc.value_position(("nothing",)) == (1, 1)
    assert doc.line_of(("tasks", 0, "when")) == 4  # the line API is unchanged
