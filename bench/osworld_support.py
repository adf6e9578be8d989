"""How many OSWorld tasks deskpilot can run today, counted from a real index file.

    python bench/osworld_support.py OSWORLD/evaluation_examples/test_all.json [--domains a,b,c]

Every task the index lists is read by deskpilot's own OSWorld reader
(deskpilot.eval.osworld.tasks.convert) with all files counted as cached (the
cache is the user's; a missing file is not a gap of deskpilot): a task is
supported when none of its set-up steps, postconfig steps, metrics, getters or
rules makes the reader skip it. Prints the share per domain and the skip
reasons, most common first.
"""

from __future__ import annotations

import argparse
import collections
import json
import tempfile
from pathlib import Path

from deskpilot.eval.osworld.tasks import OSWorldTask, Sources, convert

DOMAINS = "libreoffice_calc,libreoffice_writer,multi_apps"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("index", type=Path)
    ap.add_argument("--domains", default=DOMAINS)
    args = ap.parse_args()
    index = json.loads(args.index.read_text(encoding="utf-8"))
    examples = args.index.parent / "examples"
    reasons: collections.Counter[str] = collections.Counter()
    total = supported = 0
    with tempfile.TemporaryDirectory() as tmp:
        src = Sources(stage=Path(tmp), assume_files=True)
        for domain in args.domains.split(","):
            ids = index.get(domain, [])
            ok = 0
            for tid in ids:
                raw = OSWorldTask.model_validate_json((examples / domain / f"{tid}.json").read_text(encoding="utf-8"))
                task = convert(raw, domain, src)
                assert task.osworld is not None
                if task.osworld.skip:
                    reasons[task.osworld.skip] += 1
                else:
                    ok += 1
            print(f"{domain}: {ok} of {len(ids)} supported ({100 * ok / max(1, len(ids)):.0f}%)")
            total, supported = total + len(ids), supported + ok
    print(f"all: {supported} of {total} supported ({100 * supported / max(1, total):.0f}%)")
    print("skip reasons:")
    for reason, n in reasons.most_common():
        print(f"  {n:3d}  {reason}")


if __name__ == "__main__":
    main()
