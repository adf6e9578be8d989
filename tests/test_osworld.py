"""OSWorld's task files on deskpilot: tasks written in OSWorld's exact format, its file cache layout,
real sandboxes, the real LibreOffice saving through the mapped pyautogui ctrl+s, scripted GLM-4.5V replies."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
import zipfile
from pathlib import Path

import pytest

from deskpilot.agent.checks import CheckContext, run_checks
from deskpilot.eval.osworld import steps as st
from deskpilot.eval.osworld.tasks import OSWorldTask, Sources, convert, setup_file_name

openpyxl = pytest.importorskip("openpyxl")
docx = pytest.importorskip("docx")

ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
SAVE = ["python", "-c", "import pyautogui; pyautogui.hotkey(\"ctrl\", \"s\");"]  # as OSWorld's postconfigs write it


def box(call: str) -> str:
    return f"Next step.\n<|begin_of_box|>{call}<|end_of_box|>\nMemory:\n[]"


def deskpilot(*args, timeout=600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "deskpilot.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=ENV)


def workbook(path: Path, rows: list[list]) -> Path:
    book = openpyxl.Workbook()
    ws = book.active
    ws.title = "Sheet1"
    for row in rows:
        ws.append(row)
    book.save(path)
    return path


def document(path: Path, paragraphs: list[str], spacing: float | None = None) -> Path:
    doc = docx.Document()
    for text in paragraphs:
        p = doc.add_paragraph(text)
        if spacing is not None:
            p.paragraph_format.line_spacing = spacing
    doc.save(path)
    return path


def pdf(path: Path, text: str) -> Path:
    """A one-page PDF with one line of text (written by hand: the PDF format, not a library)."""
    stream = f"BT /F1 18 Tf 40 100 Td ({text}) Tj ET".encode()
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
               b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 300 200] /Contents 4 0 R "
               b"/Resources << /Font << /F1 5 0 R >> >> >>",
               b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
               b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for n, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % n + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    path.write_bytes(bytes(out))
    return path


ROWS = [["Item", "Qty"], ["apples", 3], ["pears", 10]]


# -- the metrics, as checks ------------------------------------------------------------------

def test_osworld_metrics_are_checks_that_pass_and_fail(tmp_path):
    workbook(tmp_path / "got.xlsx", ROWS + [[None, 13]])
    workbook(tmp_path / "gold.xlsx", ROWS + [[None, 13.00001]])
    workbook(tmp_path / "other.xlsx", ROWS + [[None, 14]])
    book = openpyxl.load_workbook(tmp_path / "other.xlsx")
    book.active.freeze_panes, book.active.sheet_view.zoomScale = "A2", 150
    book.save(tmp_path / "frozen.xlsx")
    document(tmp_path / "got.docx", ["Title", "Some  text here."], spacing=1.5)
    document(tmp_path / "gold.docx", ["Title", "Some text here."], spacing=1.5)
    document(tmp_path / "single.docx", ["Title", "Some text here."], spacing=1.0)
    for name, cell_text in (("t_got.docx", "42"), ("t_gold.docx", " 42 "), ("t_other.docx", "43")):
        doc = docx.Document()
        doc.add_table(rows=2, cols=2).cell(1, 1).text = cell_text
        doc.save(tmp_path / name)
    (tmp_path / "got.csv").write_text("a,b\n1,2\n")
    (tmp_path / "gold.csv").write_text("A,B \n1,2\n")
    (tmp_path / "out.txt").write_text("hello world\n")
    (tmp_path / "got-Sheet1.csv").write_text("Item,Qty\napples,3\n\n")  # as libreoffice --convert-to prints them
    (tmp_path / "gold-Sheet1.csv").write_text("Item,Qty\napples,3\n")
    (tmp_path / "other-Sheet1.csv").write_text("Item,Qty\napples,4\n")
    pdf(tmp_path / "got.pdf", "Invoice 42")
    pdf(tmp_path / "gold.pdf", "Invoice 42")
    pdf(tmp_path / "other.pdf", "Invoice 43")
    data = {"type": "sheet_data", "sheet_idx0": 0, "sheet_idx1": "EI0"}
    cell = {"type": "check_cell", "sheet_idx": "RNSheet1", "coordinate": "B4", "props": {"value": {"method": "eq", "ref": 13}}}
    cases = [
        ({"file": "got.xlsx", "compare_table": {"expected": "gold.xlsx", "rules": [data, cell]}}, True),  # 4 decimals
        ({"file": "got.xlsx", "compare_table": {"expected": "other.xlsx", "rules": [data]}}, False),
        ({"file": "got.xlsx", "compare_table": {"rules": [{**cell, "props": {"value": {"method": "approx:0.5", "ref": 13.4}}}]}}, True),
        ({"file": "got.xlsx", "compare_table": {"rules": [{**cell, "props": {"value": {"method": "gt", "ref": 13}}}]}}, False),
        ({"file": "frozen.xlsx", "compare_table": {"expected": "got.xlsx", "rules": [{"type": "freeze", "sheet_idx0": 0, "sheet_idx1": "EI0"}]}}, False),
        ({"file": "frozen.xlsx", "compare_table": {"rules": [{"type": "zoom", "sheet_idx": 0, "method": "ge", "ref": 150},
                                                               {"type": "freeze", "sheet_idx0": 0, "sheet_idx1": "RI0"}]}}, True),
        ({"file": "got.docx", "compare_docx": {"expected": "gold.docx"}}, True),  # blanks ignored by default
        ({"file": "got.docx", "compare_docx": {"expected": "gold.docx", "ignore_blanks": False}}, False),
        ({"file": "got.docx", "line_spacing": {"expected": "gold.docx"}}, True),  # OSWorld: text compared without blanks
        ({"file": "gold.docx", "line_spacing": {"expected": "single.docx"}}, False),
        ({"file": "gold.docx", "line_spacing": {"expected": "gold.docx"}}, True),
        ({"file": "t_got.docx", "docx_tables": {"expected": "t_gold.docx"}}, True),
        ({"file": "t_got.docx", "docx_tables": {"expected": "t_other.docx"}}, False),
        ({"file": "got.csv", "compare_csv": {"expected": "gold.csv"}}, False),
        ({"file": "got.csv", "compare_csv": {"expected": "gold.csv", "strict": False, "ignore_case": True}}, True),
        ({"file": "out.txt", "exact_match": "hello world"}, True),
        ({"file": "out.txt", "include_exclude": {"include": ["hello"], "exclude": ["world"]}}, False),
        ({"any_of": [{"file": "out.txt", "exact_match": "bye"}, {"file": "out.txt", "contains": "world"}]}, True),
        ({"any_of": [{"file": "out.txt", "exact_match": "bye"}, {"file": "got.pdf", "compare_pdf": {"expected": "other.pdf"}}]}, False),
        ({"file": "got.xlsx", "compare_table": {"expected": "gold.xlsx", "rules": [{"type": "sheet_print", "sheet_idx0": 0, "sheet_idx1": "EI0"}]}}, True),
        ({"file": "got.xlsx", "compare_table": {"expected": "other.xlsx", "rules": [{"type": "sheet_print", "sheet_idx0": 0, "sheet_idx1": "EI0"}]}}, False),
        ({"file": "single.docx", "compare_table": {"rules": [{"type": "sheet_name"}]}}, False),
        ({"file": "got.pdf", "compare_pdf": {"expected": "gold.pdf"}}, True),
        ({"file": "got.pdf", "compare_pdf": {"expected": "other.pdf"}}, False),
    ]
    results = run_checks([c for c, _ in cases], CheckContext(base_dir=tmp_path))
    assert [(r.check, r.passed) for r in results] == cases, [r.line() for r in results]
    assert results[1].message == "rule 1 (sheet_data): sheet 0 vs EI0: B4 is 13.0, expected 14.0"
    assert results[4].message == "rule 1 (freeze): frozen at A2 vs None"
    assert results[9].message == "paragraph 1 has line spacing 1.5, expected 1.0"
    assert results[12].message == "table 1 cell (2, 2) is '42', expected '43'"
    assert results[-3].message.startswith("cannot read single.docx as a workbook")
    assert results[-4].message == "rule 1 (sheet_print): printed line 2 differs: 'apples,3' vs 'apples,4'"
    assert results[-1].message.startswith("texts differ (similarity 0.9") and results[-2].message == "the same text (10 chars)"


def test_pyautogui_text_is_parsed_into_key_presses_never_run(tmp_path):
    steps = st.command_steps(["python", "-c", "import pyautogui; import time; time.sleep(0.5); "
                              "pyautogui.hotkey('ctrl', 's'); pyautogui.press('down', presses=3); "
                              "pyautogui.typewrite('hi'); pyautogui.scroll(-2)"], False, "/s")
    assert [s.describe() for s in steps] == ["sleep 0.5 s", "press ctrl+s", "press down x3", "type 'hi'",
                                             "scroll down x2"]
    marker = tmp_path / "ran"
    for code in (f"import pyautogui; __import__('os').system('touch {marker}')",
                 f"import os; os.system('touch {marker}')", "import pyautogui; pyautogui.click(10, 10)"):
        with pytest.raises(st.Unsupported):
            st.command_steps(["python", "-c", code], False, "/s")
    assert not marker.exists()
    run = st.command_steps("ls /home/user/Desktop", True, "/stage/home")
    assert run[0].kind == "run" and run[0].argv == ["/bin/sh", "-c", "ls /stage/home/Desktop"]
    assert st.open_step("/home/user/a.xlsx", "/stage/home").argv == ["localc", "/stage/home/a.xlsx"]


def test_the_prompt_says_ubuntu_for_osworld_tasks():
    from PIL import Image

    from deskpilot.agent.dialects.glm45v import GLM45VDialect
    from deskpilot.eval.osworld.attempt import use_platform
    from deskpilot.perception.observation import Observation

    dialect = GLM45VDialect(platform="Windows 11")
    use_platform(dialect)
    request = dialect.build_request("Sum column B", Observation(image=Image.new("RGB", (64, 48)), timestamp=0.0), [])
    text = "".join(p.text for p in request.messages[0].content if getattr(p, "text", None))
    assert "Ubuntu" in text and "Windows 11" not in text


def test_a_launched_app_has_its_window_up_before_the_next_step():
    from deskpilot.agent.desk.pool import build_desk, make_spec
    from deskpilot.sandbox import x11

    desk = build_desk(make_spec((640, 400), []))
    try:
        st.perform(desk, st.launch_step(["xterm", "-T", "launched-by-setup"], False, "/s"), timeout=60)
        conn = x11.connect(desk.display, desk.sandbox.xauthority)
        try:
            assert x11.find_window(conn, "launched-by-setup") is not None
        finally:
            conn.close()
        st.perform(desk, st.launch_step(["true"], False, "/s"), timeout=60)  # no window: returns when it exits
    finally:
        desk.close()



def test_a_task_files_commands_bind_no_host_path_outside_the_shares(tmp_path):
    """A task file is a third party's text: a path it names outside the task's share is refused, not bound."""
    from deskpilot.agent.desk.pool import build_desk, make_spec
    from deskpilot.errors import UsageError

    secret = tmp_path / "host-only" / "secret.txt"
    secret.parent.mkdir()
    secret.write_text("host secret")
    share = tmp_path / "share"
    share.mkdir()
    (share / "ok.txt").write_text("in the share")
    desk = build_desk(make_spec((640, 400), [], shares=[str(share)]))
    try:
        for step in (st.launch_step(["cat", str(secret)], False, str(share)),
                     st.launch_step(["xterm", "-e", "cat", str(secret)], False, str(share))):
            with pytest.raises(UsageError, match="came from data"):
                st.perform(desk, step, timeout=60)
        st.perform(desk, st.launch_step(["cat", str(share / "ok.txt")], False, str(share)), timeout=60)
    finally:
        desk.close()

# -- end to end: an OSWorld checkout, its cache, deskpilot eval -----------------------------------

def _task(tid: str, instruction: str, config: list, evaluator: dict, domain: str) -> dict:
    return {"id": tid, "snapshot": domain, "instruction": instruction, "source": "test", "config": config,
            "trajectory": f"trajectories/{tid}", "related_apps": [domain], "evaluator": evaluator}


def _download(cache: Path, tid: str, url: str, path: str, made: Path) -> dict:
    folder = cache / tid
    folder.mkdir(parents=True, exist_ok=True)
    made.rename(folder / setup_file_name(url, path))  # OSWorld's cache name
    return {"type": "download", "parameters": {"files": [{"url": url, "path": path}]}}


def _gold(cache: Path, tid: str, made: Path) -> dict:
    (cache / tid).mkdir(parents=True, exist_ok=True)
    made.rename(cache / tid / made.name)
    return {"type": "cloud_file", "path": f"https://files.invalid/{made.name}", "dest": made.name}


def osworld_checkout(root: Path, libreoffice: bool = True) -> tuple[Path, Path, Path]:
    """(index file, cache, scripts): an OSWorld-shaped tree with Calc, Writer and multi_apps tasks
    (without `libreoffice`: none that opens an app)."""
    examples, cache, scripts, tmp = root / "evaluation_examples" / "examples", root / "cache", root / "scripts", root / "tmp"
    for d in (cache, scripts, tmp):
        d.mkdir(parents=True)
    tasks: dict[str, list[dict]] = {"libreoffice_calc": [], "libreoffice_writer": [], "multi_apps": []}
    replies: dict[str, list[str]] = {}

    # Calc through the real LibreOffice: the agent writes B4, the postconfig saves with ctrl+s and prints CSV
    (tmp / "stock_gold-Sheet1.csv").write_text("Item,Qty\napples,3\npears,10\n,13\n")
    url = "https://files.invalid/calc-save-1"
    config = [_download(cache, "calc-save", url, "/home/user/stock.xlsx", workbook(tmp / "stock.xlsx", ROWS)),
              {"type": "open", "parameters": {"path": "/home/user/stock.xlsx"}}]
    evaluator = {"postconfig": [
        {"type": "activate_window", "parameters": {"window_name": "stock.xlsx - LibreOffice Calc", "strict": True}},
        {"type": "sleep", "parameters": {"seconds": 0.5}},
        {"type": "execute", "parameters": {"command": SAVE}},
        {"type": "sleep", "parameters": {"seconds": 0.5}},
        {"type": "execute", "parameters": {"command": [  # inside the sandbox, next to the running LibreOffice
            "libreoffice", "--convert-to", "csv:Text - txt - csv (StarCalc):44,34,UTF-8,,,,false,true,true,false,false,1",
            "--outdir", "/home/user", "/home/user/stock.xlsx"]}}],
        "func": "compare_table",
        "expected": {**_gold(cache, "calc-save", workbook(tmp / "stock_gold.xlsx", ROWS + [[None, 13]])), "multi": True},
        "result": {"type": "vm_file", "path": ["/home/user/stock.xlsx", "/home/user/stock-Sheet1.csv"],
                   "dest": ["stock.xlsx", "stock-Sheet1.csv"], "multi": True},
        "options": {"rules": [{"type": "sheet_data", "sheet_idx0": 0, "sheet_idx1": "EI0"},
                              {"type": "sheet_print", "sheet_idx0": "RI0", "sheet_idx1": "EI0"},
                              {"type": "check_cell", "sheet_idx": 0, "coordinate": "B4",
                               "props": {"value": {"method": "eq", "ref": 13}}}]}}
    printed = _gold(cache, "calc-save", tmp / "stock_gold-Sheet1.csv")
    evaluator["expected"] = {**evaluator["expected"], "path": [evaluator["expected"]["path"], printed["path"]],
                             "dest": [evaluator["expected"]["dest"], printed["dest"]]}
    if libreoffice:
        tasks["libreoffice_calc"].append(_task("calc-save", "Put 13 below the last quantity", config, evaluator,
                                               "libreoffice_calc"))
    replies["calc-save"] = [box("key(keys='ctrl+end')"), box("key(keys='down')"), box("type(content='13\\n')"),
                            box("DONE()")]

    # Calc judged on the file as staged: the reference differs, so it fails (no app needed)
    url = "https://files.invalid/calc-wrong-1"
    config = [_download(cache, "calc-wrong", url, "/home/user/Documents/q.xlsx", workbook(tmp / "q.xlsx", ROWS))]
    evaluator = {"func": "compare_table",
                 "expected": _gold(cache, "calc-wrong", workbook(tmp / "q_gold.xlsx", [["Item", "Qty"], ["apples", 4], ["pears", 10]])),
                 "result": {"type": "vm_file", "path": "/home/user/Documents/q.xlsx", "dest": "q.xlsx"},
                 "options": {"rules": [{"type": "sheet_data", "sheet_idx0": "RI0", "sheet_idx1": "EI0"}]}}
    tasks["libreoffice_calc"].append(_task("calc-wrong", "Fix the quantities", config, evaluator, "libreoffice_calc"))
    replies["calc-wrong"] = [box("DONE()")]

    # Writer: compare_docx_files on the staged document and a reference with the same text
    url = "https://files.invalid/writer-1"
    config = [_download(cache, "writer-same", url, "/home/user/Desktop/letter.docx",
                        document(tmp / "letter.docx", ["Dear Ann,", "Thank you."]))]
    evaluator = {"func": "compare_docx_files",
                 "expected": _gold(cache, "writer-same", document(tmp / "letter_gold.docx", ["Dear Ann,", "Thank  you."])),
                 "result": {"type": "vm_file", "path": "/home/user/Desktop/letter.docx", "dest": "letter.docx"},
                 "options": {}}
    tasks["libreoffice_writer"].append(_task("writer-same", "Keep the letter", config, evaluator, "libreoffice_writer"))
    replies["writer-same"] = [box("DONE()")]

    # infeasible: passes only on FAIL
    for tid, last in (("infeasible-fail", "FAIL()"), ("infeasible-done", "DONE()")):
        tasks["multi_apps"].append(_task(tid, "Make LibreOffice talk to a fax machine", [], {"func": "infeasible"},
                                         "multi_apps"))
        replies[tid] = [box(last)]
    # a shell command run inside the sandbox (on the attempt's copy of /home/user), judged by exact_match
    tasks["multi_apps"].append(_task("shell-made", "Leave the file as it is", [
        {"type": "command", "parameters": {"command": "mkdir -p /home/user/x && echo made > /home/user/x/out.txt",
                                           "shell": True}}],
        {"func": "exact_match", "result": {"type": "vm_file", "path": "/home/user/x/out.txt", "dest": "out.txt"},
         "expected": {"type": "rule", "rules": {"expected": "made"}}}, "multi_apps"))
    replies["shell-made"] = [box("DONE()")]
    # skipped: a browser step, and a metric not implemented
    tasks["multi_apps"].append(_task("needs-chrome", "Open the site", [
        {"type": "chrome_open_tabs", "parameters": {"urls_to_open": ["https://example.invalid"]}}],
        {"func": "exact_match", "result": {"type": "vm_file", "path": "/home/user/x"},
         "expected": {"type": "rule", "rules": {"expected": "x"}}}, "multi_apps"))
    tasks["multi_apps"].append(_task("needs-metric", "Draw a chart", [],
                                     {"func": "compare_pptx_files", "result": {"type": "vm_file", "path": "/home/user/a.pptx"},
                                      "expected": {"type": "cloud_file", "path": "https://files.invalid/a", "dest": "a.pptx"}},
                                     "multi_apps"))

    for domain, items in tasks.items():
        (examples / domain).mkdir(parents=True)
        for t in items:
            (examples / domain / f"{t['id']}.json").write_text(json.dumps(t, indent="\t"))
    for tid, rs in replies.items():
        (scripts / f"{tid}.json").write_text(json.dumps(rs))
    index = root / "evaluation_examples" / "test_all.json"
    index.write_text(json.dumps({d: [t["id"] for t in items] for d, items in tasks.items()}, indent=2))
    return index, cache, scripts


def _results(out: Path) -> dict[str, dict]:
    return {r["id"]: r for r in map(json.loads, (out / "results.jsonl").read_text().splitlines())}


def test_osworld_index_runs_in_parallel_with_real_libreoffice_saving_and_skips_by_reason(tmp_path):
    index, cache, scripts = osworld_checkout(tmp_path / "osworld")
    out = tmp_path / "out"
    proc = deskpilot("eval", index, "--osworld-files", cache, "--scripts", scripts, "--parallel", "3", "--out", out)
    assert proc.returncode == 1, proc.stderr  # calc-wrong and infeasible-done fail
    got = _results(out)
    verdicts = {tid: (r["status"], r["passed"]) for tid, r in got.items()}
    assert verdicts == {"calc-save": ("PASSED", True), "calc-wrong": ("FAILED", False),
                        "writer-same": ("PASSED", True), "infeasible-fail": ("PASSED", True),
                        "infeasible-done": ("FAILED", False), "shell-made": ("PASSED", True),
                        "needs-chrome": ("SKIPPED", False),
                        "needs-metric": ("SKIPPED", False)}, {t: (r["status"], r["reason"]) for t, r in got.items()}
    assert "B2 is 3.0, expected 4.0" in got["calc-wrong"]["reason"]
    # the file was saved by the real LibreOffice (the mapped ctrl+s reached it), and kept with the run
    saved = out / got["calc-save"]["run_dir"] / "shares" / "home" / "stock.xlsx"
    with zipfile.ZipFile(saved) as z:
        assert "LibreOffice" in z.read("docProps/app.xml").decode()
    assert openpyxl.load_workbook(saved)["Sheet1"]["B4"].value == 13
    assert saved.with_name("stock-Sheet1.csv").read_text().splitlines()[-1] == ",13"  # libreoffice --convert-to, inside
    summary = json.loads((out / "summary.json").read_text())
    assert summary["attempts"] == 6 and summary["passed"] == 4 and summary["skipped"] == 2
    # the command ran inside the sandbox, on the attempt's copy: the staged /home/user is untouched
    assert (out / got["shell-made"]["run_dir"] / "shares" / "home" / "x" / "out.txt").read_text() == "made\n"
    assert not (out / "osworld" / "shell-made" / "home" / "x").exists()

    assert summary["skipped_by_reason"] == {"a browser step (chrome_open_tabs)": ["needs-chrome"],
                                            "metric compare_pptx_files": ["needs-metric"]}
    assert summary["osworld"]["platform"] == "Ubuntu" and summary["osworld"]["apps"]["libreoffice"].startswith("7.")
    assert "7.3" in summary["osworld"]["note"]
    index_html = (out / "index.html").read_text()
    assert "a browser step (chrome_open_tabs)" in index_html and "metric compare_pptx_files" in index_html
    assert "skipped (not counted): 2" in proc.stdout + proc.stderr
    assert "SKIP needs-chrome~1  a browser step (chrome_open_tabs)" in proc.stdout + proc.stderr
    # the same tasks, one domain, one at a time: the same verdicts
    serial = tmp_path / "serial"
    proc = deskpilot("eval", index, "--domain", "multi_apps", "--osworld-files", cache, "--scripts", scripts,
                     "--parallel", "1", "--out", serial, "--quiet")
    assert proc.returncode == 1, proc.stderr
    again = _results(serial)
    assert sorted(again) == ["infeasible-done", "infeasible-fail", "needs-chrome", "needs-metric", "shell-made"]
    assert all((r["status"], r["passed"]) == verdicts[t] for t, r in again.items())
    # resume: a second round only; skipped tasks stay skipped, pass@2 over the judged ones
    proc = deskpilot("eval", index, "--domain", "multi_apps", "--osworld-files", cache, "--scripts", scripts,
                     "--out", serial, "--resume", "--repeat", "2", "--quiet")
    lines = [json.loads(x) for x in (serial / "results.jsonl").read_text().splitlines()]
    assert len(lines) == 10 and {x["attempt"] for x in lines[5:]} == {2}, proc.stderr
    summary = json.loads((serial / "summary.json").read_text())
    assert summary["attempts"] == 6 and summary["skipped"] == 4 and summary["pass@2"] == 0.6667


def test_osworld_mistakes_are_one_line(tmp_path):
    index, cache, scripts = osworld_checkout(tmp_path / "osworld")
    proc = deskpilot("eval", index, "--domain", "vlc", "--out", tmp_path / "o")
    assert proc.returncode == 2 and "no tasks in domain 'vlc'" in proc.stderr and "Traceback" not in proc.stderr
    suite = tmp_path / "suite.json"
    suite.write_text(json.dumps({"tasks": [{"id": "a", "task": "t", "script": [box("DONE()")]}]}))
    proc = deskpilot("eval", suite, "--domain", "x", "--out", tmp_path / "o2")
    assert proc.returncode == 2 and "--domain go(es) with OSWorld task files" in proc.stderr


def test_a_task_without_its_cached_file_is_skipped_not_failed(tmp_path):
    raw = OSWorldTask.model_validate(_task("t1", "x", [{"type": "download", "parameters": {"files": [
        {"url": "https://files.invalid/a", "path": "/home/user/a.xlsx"}]}}],
        {"func": "compare_table", "result": {"type": "vm_file", "path": "/home/user/a.xlsx"},
         "options": {"rules": [{"type": "sheet_data", "sheet_idx0": 0, "sheet_idx1": 0}]}}, "libreoffice_calc"))
    task = convert(raw, "libreoffice_calc", Sources(files=tmp_path / "cache", stage=tmp_path / "stage"))
    assert task.osworld is not None and task.osworld.skip.startswith("set-up file not in the file cache")
    assert setup_file_name("https://files.invalid/a", "/home/user/a.xlsx") == \
        f"{uuid.uuid5(uuid.NAMESPACE_URL, 'https://files.invalid/a')}_a.xlsx"
    assert task.checks == []
    # a task file cannot write outside its /home/user, nor name folders with its id
    evil = OSWorldTask.model_validate(_task("t2", "x", [{"type": "download", "parameters": {"files": [
        {"url": "https://files.invalid/a", "path": "/home/user/../../escaped.txt"}]}}], {"func": "infeasible"}, "os"))
    (tmp_path / "cache" / "t2").mkdir(parents=True)
    (tmp_path / "cache" / "t2" / setup_file_name("https://files.invalid/a", "/home/user/../../escaped.txt")).write_text("x")
    task = convert(evil, "os", Sources(files=tmp_path / "cache", stage=tmp_path / "stage"))
    assert task.osworld is not None and task.osworld.skip == "a set-up file outside /home/user"
    assert not list(tmp_path.rglob("escaped.txt"))
    with pytest.raises(ValueError):
        OSWorldTask.model_validate(_task("../..", "x", [], {"func": "infeasible"}, "os"))
    # `multi` getters: the metric gets the first file; the others (a sheet's CSV export) lie next to it
    urls = ["https://files.invalid/g1", "https://files.invalid/g2"]
    for dest in ("b_gold.xlsx", "b_gold-Sheet1.csv"):
        (tmp_path / "cache" / "t3").mkdir(parents=True, exist_ok=True)
        (tmp_path / "cache" / "t3" / dest).write_text(dest)
    multi = OSWorldTask.model_validate(_task("t3", "x", [], {
        "func": "compare_table", "options": {"rules": [{"type": "sheet_print", "sheet_idx0": 0, "sheet_idx1": "EI0"}]},
        "result": {"type": "vm_file", "path": ["/home/user/b.xlsx", "/home/user/b-Sheet1.csv"], "dest": ["b.xlsx", "b-Sheet1.csv"], "multi": True},
        "expected": {"type": "cloud_file", "path": urls, "dest": ["b_gold.xlsx", "b_gold-Sheet1.csv"], "multi": True}},
        "libreoffice_calc"))
    task = convert(multi, "libreoffice_calc", Sources(files=tmp_path / "cache", stage=tmp_path / "stage"))
    assert task.osworld is not None and not task.osworld.skip
    spec = task.checks[0]
    assert spec["file"] == str(tmp_path / "stage" / "t3" / "home" / "b.xlsx")
    assert spec["compare_table"]["expected"] == str(tmp_path / "stage" / "t3" / "expected" / "b_gold.xlsx")
    assert (tmp_path / "stage" / "t3" / "expected" / "b_gold-Sheet1.csv").read_text() == "b_gold-Sheet1.csv"


def test_one_task_file_a_folder_and_an_index_are_read_alike(tmp_path):
    from deskpilot.eval.osworld.tasks import is_osworld, load_osworld

    index, cache, scripts = osworld_checkout(tmp_path / "osworld", libreoffice=False)
    examples = index.parent / "examples"
    (examples / "multi_apps" / "needs-chrome-win.json").write_text("{}")  # OSWorld's Windows variants: not read
    src = Sources(files=cache, stage=tmp_path / "stage", scripts=scripts)
    whole = load_osworld(index, src)
    folder = load_osworld(examples, src)
    one = load_osworld(examples / "libreoffice_writer" / "writer-same.json", src)
    assert sorted(t.id for t in whole.tasks) == sorted(t.id for t in folder.tasks) and len(whole.tasks) == 7
    assert {t.id: t.tags for t in whole.tasks} == {t.id: t.tags for t in folder.tasks}
    assert [t.id for t in one.tasks] == ["writer-same"] and one.tasks[0].tags == ["osworld", "libreoffice_writer"]
    assert one.tasks[0].replies() == [box("DONE()")]
    assert is_osworld(index) and is_osworld(examples) and not is_osworld(tmp_path / "stage")
    assert [t.id for t in load_osworld(examples, src, domain="libreoffice_writer").tasks] == ["writer-same"]
