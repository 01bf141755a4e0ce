"""The ``gpudcm show`` subcommand (placeholder until issue #10 lands)."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("show", help="render a file to PNG")
    p.set_defaults(func=lambda args: 2)
