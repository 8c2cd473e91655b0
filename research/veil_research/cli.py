"""`veil-research` (or `python -m veil_research`): the research commands, one module each.

- `veil-research eval [--quick] [--loo] ...`: protection benchmark (Fawkes protocol)
- `veil-research report RESULTS.json ...`: docs/protection.md and .png from eval JSON
- `veil-research tune [--steps N ...]`: one optimiser budget: protection, LOO, speed
- `veil-research personal [--strengths ...]`: an enrolled person's personal cloak: LOO,
  after JPEG, against an adaptive tracker
- `veil-research personal-report`: the README's strengths table and the product's
  per-strength figures, from the committed personal runs
- `veil-research match [--photos]`: own-face and false-match rates of enrolment matching
- `veil-research video [--people N --uploads N --frames N --personal medium]`: protection of
  cloaked video frames taken as the tracker's uploads, against photo cloaks of the same photos
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in {"-h", "--help"}:
        print(__doc__)
        return 0 if args else 2
    command, rest = args[0], args[1:]
    if command == "eval":
        from veil.memory import share_one_malloc_arena
        from veil_research import eval as eval_command

        share_one_malloc_arena()  # before any worker thread exists (see veil.memory)
        parser = argparse.ArgumentParser(prog="veil-research")
        sub = parser.add_subparsers(dest="command", required=True)
        eval_command.add_parser(sub)
        return eval_command.run(parser.parse_args(["eval", *rest]))
    if command == "report":
        from veil_research import report

        return report.main(rest)
    if command == "personal":
        from veil.memory import share_one_malloc_arena
        from veil_research import personal_eval

        share_one_malloc_arena()
        return personal_eval.main(rest)
    if command == "personal-report":
        from veil_research import personal_report

        return personal_report.main(rest)
    if command == "match":
        from veil_research import match_eval

        return match_eval.main(rest)
    if command == "video":
        from veil.memory import share_one_malloc_arena
        from veil_research import video_eval

        share_one_malloc_arena()
        return video_eval.main(rest)
    if command == "tune":
        from veil_research import tune_cloak

        return tune_cloak.main(rest)
    print(f"veil-research: unknown command {command!r}\n{__doc__}", file=sys.stderr)
    return 2
