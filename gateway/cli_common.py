"""What every `ocr-gateway` subcommand module shares: its error and the configuration it reads."""

from __future__ import annotations

import argparse
from pathlib import Path

from gateway.config import ConfigError, Settings, load_settings


class CLIError(Exception):
    """A command that cannot do what it was asked: the message is printed, the exit code is 2."""

    exit_code = 2


def settings_of(args: argparse.Namespace) -> Settings:
    """The configuration named by --config, else ./config.yaml if present, else the defaults."""
    try:
        return load_settings(Path(args.config) if args.config else _default_config())
    except ConfigError as exc:
        raise CLIError(str(exc)) from exc


def _default_config() -> Path | None:
    path = Path("config.yaml")
    return path if path.is_file() else None
