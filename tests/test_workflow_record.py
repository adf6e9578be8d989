"""`deskpilot workflow run --record`: one video of every desktop a workflow opens, decoded with PyAV."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from deskpilot.cli import app

COLOUR_APP = """
import sys, tkinter
root = tkinter.Tk(className="colour")
root.title("colour " + sys.argv[1])
root.geometry(f"{root.winfo_screenwidth()}x{root.winfo_screenheight()}+0+0")
root.configure(background=sys.argv[1])
root.mainloop()
"""


def reply(call: str, thought: str) -> str:
    return f"{thought}\n<|begin_of_box|>{call}<|end_of_box|>\nMemory:\n[]"


def _near(pixel, rgb, tol=50) -> bool:
    return all(abs(a - b) < tol for a, b in zip(pixel, rgb))


def test_a_workflow_with_two_desktops_of_different_sizes_is_one_video(tmp_path, monkeypatch):
    av = pytest.importorskip("av")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "colour.py").write_text(COLOUR_APP)
    (tmp_path / "rows.csv").write_text("size,colour\n640x480,#ff0000\n1024x576,#0000ff\n")
    (tmp_path / "flow.yaml").write_text(f"""name: filmed
desktop: {{size: '{{size}}'}}
steps:
  - foreach: rows.csv
    sandbox: per_row
    steps:
      - launch: "python3 {tmp_path / 'colour.py'} {{colour}}"
      - wait_for_window: "colour {{colour}}"
      - agent: "Click the middle of the screen"
      - sleep: 1
""")
    script = tmp_path / "replies.json"  # one agent step per row: two runs of the loop, one video
    script.write_text(json.dumps([reply("left_click(start_box='[500,500]')", "Click the middle."), reply("DONE()", "Done."),
                                  reply("left_click(start_box='[500,500]')", "Again."), reply("DONE()", "Done.")]))
    video = tmp_path / "flow.mp4"
    result = CliRunner().invoke(app, ["workflow", "run", "flow.yaml", "--script", str(script), "--out", "run",
                                      "--record", str(video)])
    assert result.exit_code == 0, result.output
    assert f"video: {video}" in result.output
    with av.open(str(video)) as container:
        frames = [f.to_image() for f in container.decode(video=0)]
    assert len(frames) >= 10
    assert {f.size for f in frames} == {(640, 480)}  # the first desktop's size throughout
    centre = [f.getpixel((320, 240)) for f in frames]
    red = [i for i, c in enumerate(centre) if _near(c, (255, 0, 0))]
    blue = [i for i, c in enumerate(centre) if _near(c, (0, 0, 255))]
    assert red and blue and max(red) < min(blue), centre  # what the workflow did, in the order it did it
    assert not _near(centre[0], (255, 0, 0))  # before its launch step the screen was not red
    # the 1024x576 desktop is scaled to 640x360 and centred: black bands above and below, nothing stretched
    last = frames[blue[-1]]
    assert _near(last.getpixel((320, 20)), (0, 0, 0)) and _near(last.getpixel((320, 120)), (0, 0, 255))
    assert _near(last.getpixel((5, 240)), (0, 0, 255))  # full width: scaled, not cropped


def test_record_needs_a_video_suffix(tmp_path):
    (tmp_path / "flow.yaml").write_text("steps:\n  - sleep: 0\n")
    result = CliRunner().invoke(app, ["workflow", "run", str(tmp_path / "flow.yaml"), "--record", str(tmp_path / "v.avi")])
    assert result.exit_code == 2 and "use a .mp4, .webm or .gif" in result.output
