"""`trio-tls ... --help` and argument errors: every option explained, every default said once,
every error under the one `trio-tls: error:` prefix."""

from __future__ import annotations

import argparse
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from trio_tls import cli
from trio_tls.cli.parser import build_parser

from .cli_server import child_env, command


def _parsers(
    parser: argparse.ArgumentParser,
) -> Iterator[argparse.ArgumentParser]:
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from _parsers(sub)


def _documented(parser: argparse.ArgumentParser) -> Iterator[argparse.Action]:
    for action in parser._actions:
        if action.help == argparse.SUPPRESS or isinstance(action, argparse._SubParsersAction):
            continue
        if isinstance(action, (argparse._HelpAction, argparse._VersionAction)):
            continue
        yield action


PARSERS = {parser.prog: parser for parser in _parsers(build_parser())}


def test_every_subcommand_is_walked() -> None:
    assert set(PARSERS) == {
        "trio-tls",
        "trio-tls serve",
        "trio-tls certs",
        "trio-tls handlers",
        "trio-tls ticket-keys",
        "trio-tls ticket-keys rotate",
    }


@pytest.mark.parametrize("prog", sorted(PARSERS))
def test_every_option_has_help_and_says_its_default_once(prog: str) -> None:
    parser = PARSERS[prog]
    assert parser.description, f"{prog} --help says nothing about what it does"
    formatter = parser._get_formatter()
    for action in _documented(parser):
        name = "/".join(action.option_strings) or action.dest
        assert action.help, f"{prog} {name} has no help"
        text = formatter._expand_help(action)  # the text --help shows, defaults filled in
        defaults = len(re.findall(r"\bdefault\b", text))
        if action.option_strings:
            assert defaults == 1, f"{prog} {name}: {defaults} defaults in {text!r}"
        else:
            assert defaults == 0, f"{prog} {name} is required: {text!r}"


def test_help_output_shows_no_doubled_default(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["serve", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "(default: None)" not in text
    assert "(default: [])" not in text
    for default in ("(default: 4433)", "(default: hello)", "(default: 10.0)", "(default: info)"):
        assert default in text


ARGUMENT_ERRORS = {
    "no-command": ([], "the following arguments are required"),
    "unknown-command": (["sever"], "invalid choice: 'sever'"),
    "serve-bad-port": (["serve", "--port", "99999"], "port 99999 is out of range"),
    "serve-bad-choice": (["serve", "--log-level", "loud"], "invalid choice: 'loud'"),
    "serve-unknown-option": (["serve", "--colour", "red"], "unrecognized arguments"),
    "certs-bad-key-type": (["certs", "--key-type", "dsa"], "invalid choice: 'dsa'"),
    "certs-bad-days": (["certs", "--days", "soon"], "invalid int value: 'soon'"),
    "handlers-extra": (["handlers", "all"], "unrecognized arguments: all"),
    "ticket-keys-no-action": (["ticket-keys"], "the following arguments are required"),
    "rotate-no-file": (["ticket-keys", "rotate"], "the following arguments are required: FILE"),
}


@pytest.mark.parametrize(("argv", "message"), ARGUMENT_ERRORS.values(), ids=ARGUMENT_ERRORS)
def test_argument_errors_of_every_subcommand_share_the_prefix(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(argv)
    assert exited.value.code == 1
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("trio-tls: error: "), lines[0]
    assert message in lines[0]
    assert "--help)" in lines[0]


def _commands_errors(tmp_path: Path) -> dict[str, tuple[list[str], str]]:
    """Beyond argparse: each command's own ways to fail, through main()'s one handler."""
    not_a_directory = tmp_path / "file"
    not_a_directory.write_text("")
    return {
        "certs-days": (["certs", "--days", "0", "--out", str(tmp_path)], "--days must be"),
        "certs-name": (["certs", "--name", "a b", "--out", str(tmp_path)], "--name 'a b'"),
        "certs-out": (["certs", "--out", str(not_a_directory)], "cannot write to"),
        "ticket-keys-directory": (
            ["ticket-keys", "rotate", str(tmp_path)],
            f"cannot read ticket key file {tmp_path}",
        ),
        "ticket-keys-malformed": (
            ["ticket-keys", "rotate", str(not_a_directory)],
            "holds no key",
        ),
    }


@pytest.mark.parametrize(
    "case",
    ["certs-days", "certs-name", "certs-out", "ticket-keys-directory", "ticket-keys-malformed"],
)
def test_command_errors_share_the_prefix(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv, message = _commands_errors(tmp_path)[case]
    (tmp_path / "file").chmod(0o600)
    assert cli.main(argv) == 1
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("trio-tls: error: "), lines[0]
    assert message in lines[0], lines[0]


def test_serve_where_no_dev_certificate_can_be_made_is_one_line(tmp_path: Path) -> None:
    """An OSError from making certs/ (a file is in the way) was a traceback."""
    (tmp_path / "certs").write_text("")
    result = subprocess.run(
        command("serve", "--port", "0"),
        cwd=tmp_path,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"trio-tls: error: cannot make a development certificate in {tmp_path / 'certs'}: File "
        "exists; give --certfile, or start where certs/ can be made"
    ]


def test_an_os_error_nobody_foresaw_is_still_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def refuse(args: object) -> None:
        raise PermissionError(13, "Permission denied", "/var/lib/somewhere")

    monkeypatch.setattr(cli, "cmd_handlers", refuse)
    assert cli.main(["handlers"]) == 1
    assert capsys.readouterr().err == "trio-tls: error: /var/lib/somewhere: Permission denied\n"
