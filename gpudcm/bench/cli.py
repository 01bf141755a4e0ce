"""The ``gpudcm bench`` subcommand (placeholder until issue #9 lands)."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="side-by-side performance report")
    p.set_defaults(func=lambda args: 2)
