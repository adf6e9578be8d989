"""The report as a trace viewer: run facts, timeline, markers, final screen; checked in a real Chromium."""

from __future__ import annotations

import io
from html.parser import HTMLParser
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from chromium import Chromium, needs_chromium
from deskpilot.actions.models import Click, DoubleClick, Done, Drag, Key, Scroll, Type
from deskpilot.agent.records.models import CheckRecord, EndRecord, PolicyDecision, QueryRecord, Status, StepRecord
from deskpilot.agent.records.report import build_report
from deskpilot.agent.records.marks import COLOURS
from deskpilot.agent.records.trajectory import Trajectory, now_iso

SIZE = (1280, 800)
GARBAGE = "x" * 6000 + " <|begin_of_box|>" + "é" * 3000


def _screen(label: str) -> Image.Image:
    img = Image.new("RGB", SIZE, "#eef0f4")
    draw = ImageDraw.Draw(img)
    draw.rectangle((300, 200, 980, 600), fill="white", outline="black")
    draw.text((320, 220), label, fill="black")
    return img


def _settings(task="save the form", dry=False) -> dict:
    return {"task": task, "dialect": "glm-4.5v", "backend": "OpenAICompatibleBackend", "model": "glm-4.5v",
            "base_url": "http://127.0.0.1:8000/v1", "loop": {"thinking": False, "dry_run": dry},
            "policy": {"max_steps": 30, "on_violation": "stop", "deny_keys": ["ctrl+alt+delete"]},
            "session": {"size": list(SIZE), "isolation": "bwrap", "network": False,
                        "apps": [{"argv": ["xterm", "-title", "my term"], "binds": []}]}}


def _step(traj, n, action, **extra) -> None:
    shot = traj.save_screenshot(_screen(f"step {n}"), f"step_{n:03d}.png")
    traj.append(StepRecord(step=n, time=now_iso(), screenshot=shot, screen_size=SIZE, thought=f"thought {n}",
                           action=action.model_dump(mode="json"), action_text=f"call_{n}()",
                           points=action.points(), **extra))


def _kitchen_sink(run_dir: Path, dry=False, status=Status.DONE) -> Path:
    traj = Trajectory(run_dir)
    traj.write_settings(_settings(dry=dry))
    actions = [Click(x=100, y=100), Click(x=200, y=150, button="right"), DoubleClick(x=300, y=200),
               Drag(x=400, y=300, to_x=700, to_y=500), Scroll(x=640, y=400, direction="down", amount=3),
               Type(text="hello <b>world</b>"), Key(keys="ctrl+s")]
    for n, action in enumerate(actions, 1):
        _step(traj, n, action, performed=not dry, prompt=f"PROMPT TEXT {n} <image 1280x800>")
    _step(traj, 8, Done(answer="saved"), raw_reply=GARBAGE)
    traj.append(QueryRecord(kind="locate", time=now_iso(), query="the Save button",
                            screenshot=traj.save_screenshot(_screen("query"), "query_001.png"),
                            result=[500, 520, 620, 560]))
    replay = run_dir / "replay-20260101-120000"  # what `deskpilot replay` leaves when step 2's screen differed
    replay.mkdir()
    _screen("diff").save(replay / "diverged_step_002_diff.png")
    _screen("live").save(replay / "diverged_step_002_live.png")
    final = traj.save_screenshot(_screen("the end"), "final.png")
    traj.append(EndRecord(time=now_iso(), status=status, answer="saved", steps=8, screenshot=final))
    traj.close()
    return build_report(run_dir)


class _Tags(HTMLParser):
    """Start tags with their attributes, and the visible text, of a page."""

    def __init__(self, html: str):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)

    def find(self, tag, **attrs):
        return [a for t, a in self.tags if t == tag and all(a.get(k.rstrip("_")) == v for k, v in attrs.items())]


def test_header_names_the_run_facts_and_markers_differ_per_action_kind(tmp_path):
    html = _kitchen_sink(tmp_path).read_text()
    page = _Tags(html)
    text = " ".join(page.text)
    for fact in ("glm-4.5v", "http://127.0.0.1:8000/v1", "Thinking", "off", "xterm -title 'my term'", "1280x800",
                 "max 30 steps", "deny keys ctrl+alt+delete", "Dry run"):
        assert fact in text, fact
    # one timeline link per step, and one for the final screen
    links = [a["href"] for t, a in page.tags if t == "a" and a.get("href", "").startswith("#")]
    assert links[:8] == [f"#step-{n}" for n in range(1, 9)] and "#final" in links
    strokes = {a.get("stroke") for t, a in page.tags if t in ("circle", "rect", "line")}
    for kind in ("left", "right", "double", "drag", "scroll", "locate"):
        assert COLOURS[kind] in strokes, kind
    r = 1280 // 110  # marker radius for a 1280-wide screen
    assert page.find("rect", x=str(200 - r), y=str(150 - r), width=str(2 * r), height=str(2 * r))  # right click: a square
    assert len(page.find("circle", cx="300", cy="200")) == 2  # double click: two rings
    assert page.find("line", x1="400", y1="300", x2="700", y2="500")  # drag path
    assert page.find("rect", x="500", y="520", width="120", height="40")  # the locate box
    assert "typed: hello &lt;b&gt;world&lt;/b&gt;" in html and "key: ctrl+s" in html
    assert "Ends the run: DONE" in text and "Not performed" not in text
    assert "PROMPT TEXT 3 &lt;image 1280x800&gt;" in html  # the prompt, escaped, in a collapsed block
    assert len(page.find("details", class_="prompt")) == 7
    assert page.find("img", alt="the screen after the last action")
    assert page.find("img", alt="replay diff at step 2") and page.find("img", alt="replay screen at step 2")
    assert "replay-20260101-120000: the replay's screen differed here" in text and "diverged at step 2" in text
    assert "http://" not in html.replace("http://www.w3.org", "").replace("http://127.0.0.1:8000/v1", "")


def test_a_dry_run_is_not_a_green_done_and_the_failing_step_is_marked(tmp_path):
    dry = _Tags(_kitchen_sink(tmp_path / "dry", dry=True).read_text())
    assert dry.find("span", class_="status DRY") and not dry.find("span", class_="status DONE")
    assert "Not performed (dry run)" in " ".join(dry.text)

    run_dir = tmp_path / "err"
    traj = Trajectory(run_dir)
    traj.write_settings(_settings())
    _step(traj, 1, Click(x=10, y=10), performed=True)
    _step(traj, 2, Click(x=20, y=20), policy=PolicyDecision(allowed=False, reason="region denied"))
    traj.append(CheckRecord(time=now_iso(), index=0, check_kind="text_visible", label="text 'Saved' visible",
                            passed=False, message="OCR saw: Unsaved"))
    traj.append(EndRecord(time=now_iso(), status=Status.STOPPED, reason="policy: region denied", steps=2))
    traj.close()
    page = _Tags(build_report(run_dir).read_text())
    failing = [a for t, a in page.tags if t == "a" and "failing" in a.get("class", "")]
    assert [a["href"] for a in failing] == ["#step-2", "#checks"]  # the step, and the failed checks
    assert "data-failing" in page.find("section", id="step-2")[0]
    text = " ".join(page.text)
    assert "checks 0/1 passed" in text and "OCR saw: Unsaved" in text and "Not performed: region denied" in text


@needs_chromium
def test_report_in_a_real_browser_at_desktop_and_phone_width(tmp_path):
    report = _kitchen_sink(tmp_path)
    with Chromium(1400, 900) as browser:
        browser.goto(report.as_uri())
        for width in (1400, 390):
            browser.resize(width, 900, mobile=width < 800)
            layout = browser.eval("""(() => {
              const img = document.querySelector('#step-1 img'), pre = document.querySelector('#step-8 details.raw pre');
              document.querySelector('#step-8 details.raw').open = true;
              const card = document.querySelector('#step-8');
              return {page: document.documentElement.scrollWidth, view: innerWidth,
                      ratio: img.clientWidth / img.clientHeight, pre: pre.getBoundingClientRect().right,
                      card: card.getBoundingClientRect().right, nav: getComputedStyle(document.querySelector('nav')).display};
            })()""")
            assert layout["page"] <= layout["view"], layout  # nothing overflows sideways
            assert layout["ratio"] == pytest.approx(1280 / 800, rel=0.02), layout  # screenshots keep their shape
            assert layout["pre"] <= layout["card"] + 1, layout  # the 9000-char garbage reply stays in its card
            png = Image.open(io.BytesIO(browser.screenshot()))
            assert png.width == width and len(png.getcolors(1 << 16) or range(9999)) > 20  # something was drawn
        # a click on a screenshot shows it at full size, with its marks
        browser.resize(1400, 900)
        full = browser.eval("""(() => { document.querySelector('#step-2 figure').click();
            const v = document.getElementById('viewer'), img = v.querySelector('img');
            return {open: v.open, width: img.getBoundingClientRect().width, marks: v.querySelectorAll('svg rect').length}; })()""")
        assert full["open"] and full["width"] == pytest.approx(1280, abs=1) and full["marks"] >= 2, full
        assert browser.eval("location.hash = '#step-5'; document.querySelector('#step-5').getBoundingClientRect().top") < 50
