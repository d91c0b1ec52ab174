"""The `genlab` command: run the course, train/evaluate registered models, release and grade notebooks, build the site.

    genlab run [NOTEBOOK...] [--profile P] [--jobs N] [--out DIR] [--timeout S] [--store] [--site]
    genlab train NAME [--profile P] [--resume/--no-resume] [--ship] [--seed S]
    genlab eval NAME
    genlab release [NOTEBOOK...] --out DIR
    genlab grade SUBMISSION... --out DIR [--jobs N] [--timeout S] [--memory-mb M]
    genlab site [--run DIR] [--out DIR]

Each subcommand lives in its own module; this file only parses arguments and dispatches (imports are lazy so that
`genlab --help` is instant).
"""
from __future__ import annotations

import argparse
import sys

PROFILE_CHOICES = ["auto", "ci", "cpu", "gpu"]


def _run(a: argparse.Namespace) -> int:
    from genlab.course.run import main

    code = main(a)
    if a.site and code in (0, 1):  # the run finished (1: some notebooks failed, their pages show how far they got)
        site = _site(argparse.Namespace(run=a.out, out=None))
        return code or site
    return code


def _site(a: argparse.Namespace) -> int:
    from genlab.course.site import main

    return main(a)


def _train(a: argparse.Namespace) -> int:
    from genlab.zoo import train_main

    return train_main(a)


def _eval(a: argparse.Namespace) -> int:
    from genlab.zoo import eval_main

    return eval_main(a)


def _release(a: argparse.Namespace) -> int:
    from genlab.course.release import main

    return main(a)


def _grade(a: argparse.Namespace) -> int:
    from genlab.course.grade import main

    return main(a)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="genlab", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("run", help="execute notebooks with papermill and write a report")
    r.add_argument("notebooks", nargs="*", help="notebooks to run (default: every notebooks/NN_*.ipynb)")
    r.add_argument("--profile", default="auto", choices=PROFILE_CHOICES)
    r.add_argument("--jobs", type=int, default=1, help="notebooks executed at once (one process each)")
    r.add_argument("--out", default="build", help="folder for executed notebooks and report.json/report.md")
    r.add_argument("--timeout", type=float, default=3600, help="seconds per notebook before it is stopped")
    r.add_argument("--store", action="store_true",
                   help="write the executed notebooks back into their source files (refresh committed outputs)")
    r.add_argument("--site", action="store_true",
                   help="after the run (also when notebooks failed) build its website into OUT/site (genlab site)")
    r.set_defaults(func=_run)

    t = sub.add_parser("train", help="train a registered model and save its checkpoint")
    t.add_argument("name")
    t.add_argument("--profile", default="auto", choices=PROFILE_CHOICES)
    t.add_argument("--resume", action=argparse.BooleanOptionalAction, default=True,
                   help="resume from the run's last periodic checkpoint if there is one")
    t.add_argument("--ship", action="store_true",
                   help="write the result into data/checkpoints/ with provenance (a checkpoint we ship)")
    t.add_argument("--out", default="runs", help="folder for periodic checkpoints and logs")
    t.add_argument("--seed", type=int, default=None,
                   help="train with another seed than the recipe's (a seed-spread run: with --ship only its "
                        "provenance and metrics are written, to data/checkpoints/seeds/NAME.seedS.json)")
    t.set_defaults(func=_train)

    e = sub.add_parser("eval", help="re-evaluate a shipped checkpoint and compare with its provenance")
    e.add_argument("name")
    e.set_defaults(func=_eval)

    rel = sub.add_parser("release", help="write student versions of the notebooks")
    rel.add_argument("notebooks", nargs="*")
    rel.add_argument("--out", default="release")
    rel.set_defaults(func=_release)

    g = sub.add_parser("grade", help="grade student submissions against the instructor notebooks")
    g.add_argument("submissions", nargs="+")
    g.add_argument("--out", default="grades")
    g.add_argument("--jobs", type=int, default=1)
    g.add_argument("--timeout", type=float, default=600)
    g.add_argument("--memory-mb", type=int, default=4096)
    g.add_argument("--instructor", action="extend", nargs="+", default=None, metavar="PATH",
                   help="instructor notebooks: folders or .ipynb files, one or several (default: $GENLAB_INSTRUCTOR, "
                        "else the course's notebooks/)")
    g.add_argument("--student-from", choices=("auto", "folder", "stem"), default="auto",
                   help="label of a notebook argument in the gradebook: its folder's name (submissions/<student>/"
                        "NN.ipynb), its file name, or auto (the folder when several files share a name)")
    g.set_defaults(func=_grade)

    s = sub.add_parser("site", help="build a static website of a course run's executed notebooks (works offline)")
    s.add_argument("--run", default="build", help="folder of the course run (what `genlab run --out DIR` wrote)")
    s.add_argument("--out", default=None, help="folder of the site (default: RUN/site); replaced by a new build")
    s.set_defaults(func=_site)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
