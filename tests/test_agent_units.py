"""Policy, config, trajectory durability and the report, without a display."""

from __future__ import annotations

import base64

import pytest
from PIL import Image, ImageDraw

from deskpilot.actions.models import Click, Done, Drag, Key, Type
from deskpilot.agent.config.spec import ConfigError, load_config, parse_size
from deskpilot.agent.loop.policy import Policy, Region
from deskpilot.agent.records.models import EndRecord, PolicyDecision, Status, StepRecord
from deskpilot.agent.records.report import build_report
from deskpilot.agent.desk.screens import same_frame, similarity
from deskpilot.agent.records.trajectory import Trajectory, load_run, now_iso


# -- policy ------------------------------------------------------------------
def test_policy_denies_listed_key_chord_in_any_spelling():
    policy = Policy(deny_keys=["Control+Alt+Delete"])
    allowed, reason = policy.check(Key(keys="alt+ctrl+del"))
    assert not allowed and "deny list" in reason
    assert policy.check(Key(keys="ctrl+c")) == (True, "")


def test_policy_allow_list_keys_and_regions():
    policy = Policy(allow_keys=["enter", "ctrl+s"], allow_regions=[Region(x1=0, y1=0, x2=99, y2=99)])
    assert policy.check(Key(keys="Return"))[0]
    assert not policy.check(Key(keys="ctrl+q"))[0]
    assert policy.check(Click(x=99, y=99))[0]
    assert not policy.check(Click(x=100, y=50))[0]
    # a drag must keep both ends inside
    assert not policy.check(Drag(x=10, y=10, to_x=150, to_y=10))[0]
    assert policy.check(Type(text="anything"))[0]


def test_policy_deny_region_and_frozen():
    policy = Policy(deny_regions=[Region.parse("0,0,50,20")])
    allowed, reason = policy.check(Click(x=25, y=10))
    assert not allowed and "denied region" in reason
    with pytest.raises(Exception):
        policy.deny_regions = ()  # a run's policy cannot be widened


def test_region_parse_errors_are_clear():
    with pytest.raises(ValueError, match="x1,y1,x2,y2"):
        Region.parse("1,2,3")
    with pytest.raises(ValueError):
        Region.parse("10,10,5,5")


# -- config --------------------------------------------------------------------
def test_config_precedence_cli_over_env_over_file(tmp_path):
    cfg_file = tmp_path / "deskpilot.toml"
    cfg_file.write_text('model = "from-file"\nmax_steps = 7\nsize = "1280x800"\n[secrets]\nPW = "hunter2"\n')
    env = {"DESKPILOT_MODEL": "from-env", "DESKPILOT_THINKING": "false"}
    cfg = load_config({"model": None, "max_steps": 9}, config_file=cfg_file, env=env)
    assert cfg.backend.model == "from-env"
    assert cfg.policy.max_steps == 9
    assert cfg.loop.thinking is False
    assert cfg.screen == (1280, 800)
    assert cfg.secrets == {"PW": "hunter2"}


@pytest.mark.parametrize(
    "cli, env, message",
    [
        ({"size": "big"}, {}, "WIDTHxHEIGHT"),
        ({"size": "10x10"}, {}, "out of range"),
        ({}, {"DESKPILOT_THINKING": "maybe"}, "true or false"),
        ({"max_steps": 0}, {}, "max_steps"),
    ],
)
def test_config_errors_are_one_line(cli, env, message):
    with pytest.raises(ConfigError, match=message) as info:
        load_config(cli, config_file=None, env=env)
    assert "\n" not in str(info.value)


def test_config_unknown_key_and_missing_secret(tmp_path):
    bad = tmp_path / "c.toml"
    bad.write_text("modle = 'typo'\n")
    with pytest.raises(ConfigError, match="unknown setting.*modle"):
        load_config({}, config_file=bad, env={})
    with pytest.raises(ConfigError, match="secret API_PW is not set"):
        load_config({}, config_file=None, env={}, secret_names=["API_PW"])


def test_parse_size():
    assert parse_size("2560x1440") == (2560, 1440)


# -- screens -------------------------------------------------------------------
def test_similarity_tolerates_noise_but_not_layout_changes():
    a = Image.new("RGB", (400, 300), "white")
    ImageDraw.Draw(a).rectangle((50, 50, 150, 100), fill="blue")
    noisy = a.copy()
    noisy.putpixel((10, 10), (250, 250, 250))
    moved = Image.new("RGB", (400, 300), "white")
    ImageDraw.Draw(moved).rectangle((200, 150, 300, 200), fill="blue")
    assert similarity(a, noisy) == pytest.approx(1.0)
    assert similarity(a, moved) < 0.97
    assert similarity(a, a.resize((200, 150))) == 0.0
    assert same_frame(a, a.copy()) and not same_frame(a, noisy)


# -- trajectory and report -----------------------------------------------------
def _shot(color="white") -> Image.Image:
    return Image.new("RGB", (320, 200), color)


def test_trajectory_redacts_secrets_and_survives_a_torn_line(tmp_path):
    traj = Trajectory(tmp_path, redact=lambda s: s.replace("hunter2", "***"))
    traj.write_settings({"task": "log in with hunter2"})
    traj.save_screenshot(_shot(), "step_001.png")
    traj.append(StepRecord(step=1, time=now_iso(), screenshot="step_001.png", raw_reply="type(content='hunter2')",
                           action=Type(text="hunter2").model_dump(mode="json")))
    traj.close()
    with open(tmp_path / "trajectory.jsonl", "a") as fh:
        fh.write('{"kind": "step", "step": 2, "ti')  # a run killed mid-write
    text = (tmp_path / "trajectory.jsonl").read_text() + (tmp_path / "settings.json").read_text()
    assert "hunter2" not in text and "***" in text
    run = load_run(tmp_path)
    assert [s.step for s in run.steps] == [1]
    assert run.skipped_lines == 1 and run.end is None


def test_report_is_self_contained_and_escapes_model_text(tmp_path):
    traj = Trajectory(tmp_path)
    traj.write_settings({"task": "click <b>it</b>"})
    traj.save_screenshot(_shot("gray"), "step_001.png")
    click = Click(x=160, y=100)
    traj.append(StepRecord(step=1, time=now_iso(), screenshot="step_001.png", screen_size=(320, 200),
                           thought="<script>alert(1)</script>", action=click.model_dump(mode="json"),
                           action_text="left_click(start_box='[500,500]')", points=click.points(),
                           performed=True, timings_ms={"model": 12.5}, usage={"prompt_tokens": 99}))
    traj.append(StepRecord(step=2, time=now_iso(), screenshot="missing.png", screen_size=(320, 200),
                           action=Drag(x=1, y=2, to_x=300, to_y=150).model_dump(mode="json"),
                           points=[(1, 2), (300, 150)], policy=PolicyDecision(allowed=False, reason="region")))
    traj.append(EndRecord(time=now_iso(), status=Status.DONE, steps=2, answer="42"))
    traj.close()
    html = build_report(tmp_path).read_text()
    assert "<script>alert" not in html and "&lt;script&gt;" in html
    assert "data:image/png;base64," + base64.b64encode((tmp_path / "step_001.png").read_bytes()).decode() in html
    assert 'cx="160" cy="100"' in html  # the click point drawn where the pixels say
    assert "Not performed: region" in html and "DONE" in html and "42" in html
    assert "http://" not in html.replace("http://www.w3.org", "") and "https://" not in html


def test_report_inlines_a_large_png_as_jpeg(tmp_path):
    import random

    traj = Trajectory(tmp_path)
    traj.write_settings({"task": "photo"})
    noise = Image.frombytes("RGB", (640, 400), random.Random(1).randbytes(640 * 400 * 3))
    traj.save_screenshot(noise, "step_001.png")
    assert (tmp_path / "step_001.png").stat().st_size > 512 * 1024
    traj.append(StepRecord(step=1, time=now_iso(), screenshot="step_001.png", screen_size=(640, 400),
                           action=Done().model_dump(mode="json"), performed=True))
    traj.append(EndRecord(time=now_iso(), status=Status.DONE, steps=1))
    traj.close()
    html = build_report(tmp_path).read_text()
    assert "data:image/jpeg;base64," in html and "data:image/png;base64," not in html


def test_report_of_an_unfinished_run(tmp_path):
    traj = Trajectory(tmp_path)
    traj.write_settings({"task": "t"})
    traj.append(StepRecord(step=1, time=now_iso()))
    traj.close()
    assert "INCOMPLETE" in build_report(tmp_path).read_text()


def test_run_state_holds_only_the_screenshots_the_prompt_can_show():
    from deskpilot.actions.step import ParsedStep
    from deskpilot.agent.loop.state import RunState
    from deskpilot.perception.observation import Observation

    state = RunState(keep_images=2)
    for i in range(5):
        parsed = ParsedStep(action=Click(x=i, y=i), thought=f"t{i}", memory=[{"i": i}] if i < 3 else None)
        state.remember(parsed, Observation(image=_shot(), timestamp=float(i)))
    assert [h.screenshot is not None for h in state.history] == [False, False, False, True, True]
    assert [h.thought for h in state.history] == ["t0", "t1", "t2", "t3", "t4"]
    assert state.memory == []  # a reply without memory resets it (the official behaviour)


def test_policy_handles_the_plus_key_and_config_rejects_unknown_keys():
    policy = Policy(deny_keys=["ctrl++"])
    assert not policy.check(Key(keys=["ctrl", "+"]))[0]
    assert policy.check(Key(keys="ctrl"))[0]
    with pytest.raises(ConfigError, match="deny_keys: unknown key name 'foo'"):
        load_config({"deny_keys": ["ctrl+foo"]}, config_file=None, env={})
    with pytest.raises(ConfigError, match="deny_regions: a region is"):
        load_config({"deny_regions": ["1,2,3"]}, config_file=None, env={})


def test_typed_newlines_obey_the_key_policy():
    policy = Policy(deny_keys=["enter"])
    allowed, reason = policy.check(Type(text="rm -rf ~\n"))
    assert not allowed and "enter" in reason
    assert policy.check(Type(text="no newline"))[0]
    assert not Policy(allow_keys=["ctrl+s"]).check(Type(text="a\tb"))[0]


def test_json_surrogate_pairs_are_typed_as_one_character():
    from deskpilot.actions.parse import parse_glm_reply

    step = parse_glm_reply('type(content="a\\ud83c\\udf89b \\U0001F600")', width=100, height=100)
    assert step.action.text == "a\U0001F389b \U0001F600"


def test_load_run_survives_a_torn_utf8_character_and_reports_bad_settings(tmp_path):
    traj = Trajectory(tmp_path)
    traj.write_settings({"task": "t"})
    traj.append(StepRecord(step=1, time=now_iso(), thought="café"))
    traj.close()
    with open(tmp_path / "trajectory.jsonl", "ab") as fh:
        fh.write('{"kind": "step", "thought": "caf'.encode() + "é".encode()[:1])
    run = load_run(tmp_path)
    assert [s.step for s in run.steps] == [1] and run.skipped_lines == 1
    (tmp_path / "settings.json").write_text("{")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_run(tmp_path)


def test_relative_file_arguments_of_an_app_are_made_absolute_and_visible(tmp_path, monkeypatch):
    from deskpilot.agent.desk.session import app_from_command

    (tmp_path / "tool.py").write_text("print('hi')\n")
    monkeypatch.chdir(tmp_path)
    spec = app_from_command("python3 tool.py --flag value")
    assert spec.argv == ["python3", str(tmp_path / "tool.py"), "--flag", "value"]
    assert spec.binds == [{"host": str(tmp_path), "writable": False, "named": str(tmp_path / "tool.py")}]


# -- the nested run spec -----------------------------------------------------------
def test_config_file_takes_flag_names_and_sections(tmp_path):
    from deskpilot.agent.config.spec import RunSpec

    cfg_file = tmp_path / "deskpilot.toml"
    cfg_file.write_text('max-steps = 4\nstep-timeout = 12\ndeny-regions = ["0,0,10,10"]\n'
                        '[desktop]\nsize = "800x600"\napps = ["xterm"]\n[loop]\nparse_retries = 5\n')
    env = {"DESKPILOT_POLICY__STUCK_REPEATS": "6", "DESKPILOT_BACKEND__MODEL": "m2", "DESKPILOT_UNRELATED": "x"}
    cfg = load_config({}, config_file=cfg_file, env=env)
    assert isinstance(cfg, RunSpec)
    assert (cfg.policy.max_steps, cfg.policy.step_timeout_s, cfg.policy.stuck_repeats) == (4, 12.0, 6)
    assert cfg.policy.deny_regions[0].x2 == 10 and cfg.desktop.apps == ["xterm"] and cfg.screen == (800, 600)
    assert cfg.loop.parse_retries == 5 and cfg.backend.model == "m2"
    # the same spec, dumped and read back, is the same spec
    again = RunSpec.model_validate(cfg.model_dump())
    assert again.policy == cfg.policy and again.desktop == cfg.desktop


@pytest.mark.parametrize("text, message", [
    ("max-stpes = 3\n", "unknown setting 'max-stpes' \\(did you mean max-steps\\?\\)"),
    ("[policy]\nsize = '800x600'\n", "unknown setting 'policy.size'"),
    ("deskpilot = 5\n", "must be a table"),
    ('deskpilot = "x"\n', "must be a table"),
    ("[secrets]\nPW = 5\n", "secrets"),
    ("max_steps = 'many'\n", "policy.max_steps"),
])
def test_config_file_mistakes_are_one_line(tmp_path, text, message):
    bad = tmp_path / "c.toml"
    bad.write_text(text)
    with pytest.raises(ConfigError, match=message) as info:
        load_config({}, config_file=bad, env={})
    assert "\n" not in str(info.value)


def test_config_fifo_or_folder_is_refused_without_blocking(tmp_path):
    import os

    fifo = tmp_path / "fifo.toml"
    os.mkfifo(fifo)
    with pytest.raises(ConfigError, match="not a regular file"):
        load_config({}, config_file=fifo, env={})
    with pytest.raises(ConfigError, match="not a regular file"):
        load_config({}, config_file=tmp_path, env={})


@pytest.mark.parametrize("settings", ["[1, 2]", '{"loop": 5, "task": "t"}', '{"session": "x"}'])
def test_broken_settings_json_is_one_line(tmp_path, settings):
    from deskpilot.agent.records.report import build_report
    from deskpilot.errors import RunFolderError

    (tmp_path / "trajectory.jsonl").write_text("")
    (tmp_path / "settings.json").write_text(settings)
    with pytest.raises(RunFolderError) as info:
        build_report(tmp_path)
    assert "\n" not in str(info.value)


def test_replay_of_a_broken_session_is_one_line(tmp_path):
    from deskpilot.agent.records.replay import session_of
    from deskpilot.errors import ReplayError

    (tmp_path / "trajectory.jsonl").write_text("")
    (tmp_path / "settings.json").write_text('{"session": {"size": "huge", "apps": 3}}')
    with pytest.raises(ReplayError, match="recorded session is broken") as info:
        session_of(tmp_path)
    assert "\n" not in str(info.value)


def test_an_app_log_tail_reads_only_the_end(tmp_path):
    from deskpilot.agent.desk.session import _tail

    log = tmp_path / "app.err"
    with open(log, "wb") as f:
        f.write(b"x" * 5_000_000 + b"\nfirst\nsecond\nthird\nfourth\n")
    assert _tail(log) == "second | third | fourth"
    assert _tail(tmp_path / "missing.err") == ""


def test_status_prints_as_its_name() -> None:
    assert str(Status.DONE) == "DONE" and f"{Status.FAILED}" == "FAILED" and f"{Status.ERROR:>6}" == " ERROR"
    assert Status("PASSED") is Status.PASSED and Status.DONE == "DONE"


def test_run_folder_names_drop_trailing_punctuation(tmp_path) -> None:
    from deskpilot.agent.records.rundir import default_run_dir

    name = default_run_dir("Compute 6 times 7 with the calculator.", tmp_path).name
    assert name.endswith("-compute-6-times-7-with-the-calculator"), name
    assert default_run_dir("What is 6*7?!", tmp_path).name.endswith("-what-is-6-7")
    assert default_run_dir("...", tmp_path).name.endswith("-run")


def test_pytest_run_folder_names_drop_trailing_punctuation() -> None:
    from deskpilot.pytest_plugin import run_name

    assert run_name(1, "Compute 6 times 7 with the calculator.") == "01-Compute_6_times_7_with_the_calculator"
    assert run_name(12, "?") == "12-test"
