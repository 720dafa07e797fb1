"""IVR menus: the default is one short level, bad menus are refused line by line, nobody is trapped."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from ivr import menu as m
from ivr.hours import BusinessHours, is_workday
from ivr.menu_run import Collect, Leave, MenuRun, Play
from ivr.prompts import load_catalog

REPO = Path(__file__).resolve().parents[2]
CATALOG = set(load_catalog(REPO / "voice-prompts"))
SHANGHAI = dt.timezone(dt.timedelta(hours=8))


def _leave(steps: list[Play | Collect | Leave]) -> m.Action:
    (last,) = [s for s in steps if isinstance(s, Leave)]
    return last.action


def test_the_default_menu_is_one_level_and_checks_clean() -> None:
    menu = m.load_menu(m.DEFAULT_MENU)
    assert m.check_menu(menu, CATALOG) == []
    assert list(menu.nodes) == ["entry"]
    entry = menu.node(menu.start)
    assert entry.prompts[:2] == ("greeting", "recording_notice")  # the notice before anything else
    assert entry.options["0"].kind is m.ActionKind.QUEUE


def test_pressing_0_or_staying_on_the_line_reaches_the_queue() -> None:
    menu = m.load_menu(m.DEFAULT_MENU)
    run = MenuRun(menu)
    steps = run.start()
    assert steps[0] == Play(("greeting", "recording_notice", "menu_main"))
    assert isinstance(steps[1], Collect) and "人工" in steps[1].keywords
    assert _leave(run.on_digits("0")).queue == "general"
    assert run.path[-1] == {"node": "entry", "input": "0", "via": "dtmf", "action": "queue"}

    silent = MenuRun(menu)
    silent.start()
    assert _leave(silent.on_no_input()).queue == "general"


def test_a_spoken_keyword_routes_like_its_key() -> None:
    menu = m.load_menu(m.DEFAULT_MENU)
    by_key, by_voice = MenuRun(menu), MenuRun(menu)
    by_key.start()
    by_voice.start()
    assert _leave(by_voice.on_speech("企业")) == _leave(by_key.on_digits("2"))
    assert by_voice.path[-1]["via"] == "speech" and by_voice.path[-1]["word"] == "企业"


def test_wrong_keys_replay_the_menu_then_fall_back_to_a_person() -> None:
    menu = m.load_menu(m.DEFAULT_MENU)
    run = MenuRun(menu)
    run.start()
    first = run.on_digits("7")
    assert first[0] == Play(("invalid_input", "greeting", "recording_notice", "menu_main"))
    assert _leave(run.on_digits("8")).kind is m.ActionKind.QUEUE  # retries = 1
    assert [p.get("result") for p in run.path[1:]] == ["invalid", "invalid", "fallback"]


def test_ticket_status_returns_to_the_menu_afterwards() -> None:
    run = MenuRun(m.load_menu(m.DEFAULT_MENU))
    run.start()
    assert _leave(run.on_digits("1")).kind is m.ActionKind.TICKET_STATUS
    assert not run.finished
    assert isinstance(run.resume()[-1], Collect)


HOURS_MENU = """\
start = "entry"

[hours]
opens = "08:30"
closes = "21:00"

[nodes.entry]
prompts = ["greeting"]
fallback = { action = "hours", day = "day", night = "night" }

[nodes.day]
prompts = ["menu_main"]
fallback = "queue:general"

[nodes.night]
prompts = ["voicemail_intro"]
fallback = "voicemail"
"""


@pytest.mark.parametrize(
    ("local", "branch"),
    [
        (dt.datetime(2026, 9, 28, 10, 0), "day"),  # an ordinary Monday
        (dt.datetime(2026, 9, 28, 22, 0), "night"),  # after closing
        (dt.datetime(2026, 10, 1, 10, 0), "night"),  # National Day, a Thursday
        (dt.datetime(2026, 10, 10, 10, 0), "day"),  # a Saturday made a workday (调休)
        (dt.datetime(2026, 10, 11, 10, 0), "night"),  # an ordinary Sunday
    ],
)
def test_business_hours_follow_the_chinese_calendar(local: dt.datetime, branch: str) -> None:
    menu = m.parse_menu(HOURS_MENU)
    assert m.check_menu(menu, CATALOG) == []
    run = MenuRun(menu, now=lambda: local.replace(tzinfo=SHANGHAI).astimezone(dt.UTC))
    run.start()
    run.on_no_input()
    assert run.node.id == branch


def test_is_workday_knows_tiaoxiu_and_falls_back_to_weekdays_beyond_the_data() -> None:
    assert is_workday(dt.date(2026, 10, 10)) and not is_workday(dt.date(2026, 10, 1))
    assert is_workday(dt.date(2099, 6, 1)) is True  # a Monday, no holiday data that far ahead
    hours = BusinessHours(dt.time(8, 30), dt.time(21, 0))
    assert not hours.is_open(dt.datetime(2026, 9, 28, 0, 0, tzinfo=dt.UTC))  # 08:00 in Shanghai


BAD_MENU = """\
start = "entry"

[nodes.entry]
prompts = ["greeting", "no_such_prompt"]

[nodes.entry.options]
"1" = "submenu:loop_a"
"2" = { action = "dance" }
"x" = "queue:general"

[nodes.loop_a]
prompts = ["menu_main"]
fallback = "submenu:loop_b"

[nodes.loop_b]
prompts = ["menu_main"]
fallback = "submenu:loop_a"

[nodes.orphan]
prompts = ["goodbye"]
fallback = "hangup"
"""


def test_a_bad_menu_is_refused_with_line_numbers() -> None:
    with pytest.raises(m.MenuError) as err:
        m.parse_menu(BAD_MENU, "bad.toml")
    problems = [str(p) for p in err.value.problems]
    assert (
        "bad.toml:8: 未知的动作 'dance'（可选：submenu, queue, voicemail, ticket_status, play, "
        "transfer, hangup, hours）" in problems
    )
    assert "bad.toml:9: 选项按键 'x' 不是电话按键（0-9、*、#）" in problems


def test_check_finds_unknown_prompts_unreachable_nodes_and_traps() -> None:
    menu = m.parse_menu(
        BAD_MENU.replace('"2" = { action = "dance" }\n', "").replace('"x" =', '"3" ='), "bad.toml"
    )
    problems = [str(p) for p in m.check_menu(menu, CATALOG)]
    assert "bad.toml:3: 节点 'entry'：未知的提示音 'no_such_prompt'" in problems
    assert "bad.toml:18: 节点 'orphan' 无法从 'entry' 到达" in problems
    assert any(p.startswith("bad.toml:10: 节点 'loop_a' 没有出口") for p in problems)
    assert any(p.startswith("bad.toml:14: 节点 'loop_b' 没有出口") for p in problems)
    assert not any("'entry' 没有出口" in p for p in problems)  # 3 reaches the queue


def test_ivr_check_command_prints_problems_and_fails(run_hotline, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    bad = tmp_path / "menu.toml"
    bad.write_text(BAD_MENU.replace('"2" = { action = "dance" }\n', "").replace('"x" =', '"3" ='))
    result = run_hotline("ivr", "check", str(bad), cwd=tmp_path)
    assert result.returncode == 1
    assert f"{bad}:18: 节点 'orphan' 无法从 'entry' 到达" in result.stderr
    ok = run_hotline("ivr", "check", cwd=tmp_path)
    assert ok.returncode == 0 and "menu OK" in ok.stdout


def test_the_trunk_lets_through_the_transfer_numbers_of_the_menu_saved_at_admin_menu(tmp_path: Path) -> None:
    from hotline.settings import Settings
    from ivr import trunk

    settings = Settings(var_dir=tmp_path)
    assert trunk.transfer_numbers(settings) == []  # the shipped menu transfers nowhere
    edited = settings.edited_ivr_menu
    edited.parent.mkdir(parents=True)
    default = m.DEFAULT_MENU.read_text(encoding="utf-8")
    edited.write_text(default.replace('"9" = "voicemail"', '"9" = "voicemail"\n"8" = "transfer:12319"'))
    assert trunk.transfer_numbers(settings) == ["12319"]
