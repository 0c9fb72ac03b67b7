"""``python -m app <command>``: the operator commands beside the server.

* ``check`` - validate the configuration against SAP AI Core (``app/cli/check.py``);
* ``demo`` - run the gateway on the simulated SAP AI Core (``app/cli/demo.py``);
* ``usage`` - token usage and estimated cost from the usage log (``app/usage.py``).

The server itself is ``gunicorn -c gunicorn.conf.py wsgi:app``.
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    from app import usage
    from app.cli import check, demo

    parser = argparse.ArgumentParser(prog="python -m app",
                                     description="SAP AI Core gateway: operator commands")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (check, demo, usage):
        module.add_parser(commands)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
