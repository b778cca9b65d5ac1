"""Reading goals: named columns and intents."""

from serendip.agent.goal import parse_goal

COLUMNS = ["mass", "radius", "temperature", "distance", "field", "log_sfr", "period"]


def test_open_goal_means_everything():
    intent = parse_goal("find something new and exciting", COLUMNS)
    assert not intent.focus and not intent.ignore and not intent.control and not intent.interests


def test_ignore_and_control_clauses():
    intent = parse_goal("Find groups of planets; ignore distance and control for mass", COLUMNS)
    assert intent.ignore == ["distance"] and intent.control == ["mass"] and intent.interests == {"groups"}


def test_focus_and_interests():
    intent = parse_goal("how does radius depend on temperature, controlling for mass? any outliers?", COLUMNS)
    assert intent.focus == ["radius", "temperature"] and intent.control == ["mass"]
    assert intent.interests == {"trends", "outliers"}


def test_underscored_names_match_spaced_words():
    intent = parse_goal("focus on log sfr but exclude field", COLUMNS)
    assert intent.focus == ["log_sfr"] and intent.ignore == ["field"]
