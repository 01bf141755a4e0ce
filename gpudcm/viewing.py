"""Viewing: render, contact_sheet, show (placeholder until issue #10 lands)."""

from __future__ import annotations


def render(*args, **kwargs):
    raise NotImplementedError


def contact_sheet(*args, **kwargs):
    raise NotImplementedError


def show(*args, **kwargs):
    raise NotImplementedError
