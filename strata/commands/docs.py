"""``strata docs``: regenerate docs/events.md from the event contract."""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("docs", help="regenerate docs/events.md from the event contract")
    p.add_argument("--check", action="store_true", help="exit 1 if docs/events.md is out of date")
    p.set_defaults(func=run)


def run(args) -> int:
    from strata import docs

    if args.check:
        current = docs.DOC_PATH.read_text(encoding="utf-8") if docs.DOC_PATH.exists() else ""
        if current != docs.render():
            print(f"{docs.DOC_PATH} is out of date; run `strata docs`")
            return 1
        return 0
    print(f"wrote {docs.write()}")
    return 0
