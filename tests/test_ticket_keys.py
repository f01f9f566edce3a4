"""Ticket keys that rotate: seal counting, the key file's format and rotation, reloading readers.

The key file is exercised the way a fleet uses it: one rotator, several readers that pick up the
new file at different moments, each of which must still open every fresh ticket.
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import trio
import trustme
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from trio_tls.engine.config import ServerConfig
from trio_tls.engine.connection import ServerConnection
from trio_tls.engine.sessions import SEAL_LIMIT, SessionState, TicketKey, TicketKeys
from trio_tls.ops import ticketfile
from trio_tls.ops.settings import Notice, Settings, ticket_keys
from trio_tls.ops.ticketfile import (
    RELOAD_SLACK,
    FileTicketKeys,
    KeyFile,
    KeyLine,
    TicketKeyFileError,
    keep_rotating,
    read_key_file,
    rotate_key_file,
    write_key_file,
)

from .cli_server import child_env, command, running_server
from .conftest import certified_key
from .openssl_peer import OpenSSLClient, client_context

NOW = 1_700_000_000.0
LIFETIME = 7200.0


def state_at(created: float) -> SessionState:
    return SessionState(0xC02F, bytes(48), True, "localhost", created)


def hex_of(key: TicketKey) -> str:
    return (key.name + key.secret).hex()


def make_file(path: Path, *lines: KeyLine) -> KeyFile:
    key_file = KeyFile(tuple(lines))
    write_key_file(path, key_file)
    return key_file


# --- seals are counted ------------------------------------------------------------------------


def test_own_keys_rotate_when_they_reach_the_seal_limit() -> None:
    keys = TicketKeys(lifetime=LIFETIME, now=NOW, seal_limit=3)
    tickets = [keys.seal(state_at(NOW)) for _ in range(7)]
    names = [ticket[:16] for ticket in tickets]
    assert names[0] == names[1] == names[2] != names[3] == names[4] == names[5] != names[6]
    assert all(keys.open(ticket, NOW + 1) == state_at(NOW) for ticket in tickets)


def test_handed_in_keys_stop_sealing_at_the_limit() -> None:
    keys = TicketKeys([TicketKey.generate()], lifetime=LIFETIME, seal_limit=2)
    first, second = keys.seal(state_at(NOW)), keys.seal(state_at(NOW))
    assert first and second
    assert keys.seal(state_at(NOW)) == b""  # RFC 5077 §3.3: an empty ticket, never a reused key
    assert keys.open(first, NOW + 1) == state_at(NOW)


def test_a_spent_key_sends_an_empty_ticket_that_openssl_accepts(
    ca: trustme.CA, rsa_leaf: trustme.LeafCert
) -> None:
    config = ServerConfig(
        [certified_key(rsa_leaf)],
        ticket_keys=TicketKeys([TicketKey.generate()], seal_limit=1),
    )
    sessions = []
    for _ in range(2):
        client = OpenSSLClient(ServerConnection(config), client_context(ca))
        client.handshake()
        client.send(b"ping")
        client.server.send(b"pong")
        assert client.receive(4) == b"pong"
        sessions.append(client.ssl.session)
    assert sessions[0] is not None and sessions[0].has_ticket
    assert sessions[1] is not None and not sessions[1].has_ticket


def forge(key: TicketKey, state: SessionState) -> bytes:
    """A ticket sealed with `key` as TicketKeys seals one: what a thief of the key can make."""
    nonce = os.urandom(12)
    return key.name + nonce + AESGCM(key.secret).encrypt(nonce, state.encode(), key.name)


def test_a_retired_key_is_dropped_once_its_tickets_have_expired(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Guards the pruning of our own retired keys (RFC 5077 §5.5): a retired key opens tickets
    for one ticket lifetime after it stopped sealing (the last ticket it sealed may be that
    young), and none after, so a key stolen later opens nothing, however fresh the ticket it
    forges; and the keys a long-running process holds stay few."""
    made: list[TicketKey] = []
    generate = TicketKey.generate

    def recorded() -> TicketKey:
        made.append(generate())
        return made[-1]

    monkeypatch.setattr(TicketKey, "generate", staticmethod(recorded))
    keys = TicketKeys(lifetime=LIFETIME, rotate_after=3600, now=NOW)
    first = made[0]
    assert keys.seal(state_at(NOW))[:16] == first.name
    assert keys.seal(state_at(NOW + 3600))[:16] != first.name  # retired at NOW + 3600
    # Up to a lifetime after its retirement it still opens (a rotation in between keeps it)...
    later = NOW + 3600 + LIFETIME
    assert keys.open(forge(first, state_at(later)), later) == state_at(later)
    # ...and not once the rotation after that has run.
    later += 3600
    assert keys.open(forge(first, state_at(later)), later) is None
    assert keys.open(forge(made[-1], state_at(later)), later) == state_at(later)


def test_the_seal_limit_keeps_the_fleet_under_the_gcm_bound() -> None:
    # NIST SP 800-38D §8.3: 2^32 random 96-bit nonces per key; 256 processes share one key.
    assert SEAL_LIMIT * 256 <= 2**32


# --- the file format --------------------------------------------------------------------------


def test_key_file_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "tickets.keys"
    written = KeyFile.fresh(NOW)
    write_key_file(path, written)
    assert path.stat().st_mode & 0o777 == 0o600
    text = path.read_text()
    assert text.startswith("# trio-tls ticket keys")
    roles = [line.split()[0] for line in text.splitlines() if not line.startswith("#")]
    assert roles == ["next", "seal"]
    read, _ = read_key_file(path)
    assert read == written
    assert read.keys()[0] == written.sealing.key


def test_the_first_format_still_loads(tmp_path: Path) -> None:
    """Bare keys: the first seals, the others open; the mtime stands in for the times."""
    keys = [TicketKey.generate(), TicketKey.generate()]
    path = tmp_path / "tickets.keys"
    path.write_text("# rotated by hand\n\n" + "".join(hex_of(key) + "\n" for key in keys))
    path.chmod(0o600)
    os.utime(path, (NOW, NOW))
    key_file, _ = read_key_file(path)
    assert key_file.lines == (
        KeyLine("seal", keys[0], int(NOW)),
        KeyLine("open", keys[1], int(NOW)),
    )
    state = state_at(NOW)
    old = TicketKeys(keys[1:]).seal(state)
    assert FileTicketKeys(path, now=NOW).open(old, NOW + 1) == state
    assert FileTicketKeys(path, now=NOW).seal(state)[:16] == keys[0].name


GOOD = "00" * 48
OTHER = "11" * 48


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "cannot read ticket key file"),
        ("", "holds no key"),
        ("# only a comment\n", "holds no key"),
        ("00" * 47 + "\n", ":1: expected 96 hex digits"),
        ("zz" * 48 + "\n", ":1: expected 96 hex digits"),
        (f"{GOOD}\n{'00' * 49}\n", ":2: expected 96 hex digits"),
        ("é\n", "cannot read ticket key file"),
        (f"seal {GOOD}\n", ":1: expected 'next|seal|open"),
        (f"seal {GOOD} 12.5\n", ":1: expected 'next|seal|open"),
        (f"seal {GOOD} 1\nkeep {OTHER} 1\n", ":2: expected 'next|seal|open"),
        (f"seal {GOOD} 1\n{OTHER}\n", ":2: expected 'next|seal|open"),
        (f"seal {'00' * 40} 1\n", ":1: expected 96 hex digits"),
        (f"next {GOOD} 1\nopen {OTHER} 1\n", "0 'seal' lines"),
        (f"seal {GOOD} 1\nseal {OTHER} 1\n", "2 'seal' lines"),
        (f"seal {GOOD} 1\nopen {GOOD} 1\n", "two keys with the same name"),
    ],
)
def test_bad_ticket_key_files(tmp_path: Path, content: str | None, message: str) -> None:
    path = tmp_path / "tickets.keys"
    if content is not None:
        path.write_text(content, "utf-8")
        path.chmod(0o600)
    with pytest.raises(TicketKeyFileError, match=message):
        read_key_file(path)


# --- rotation ---------------------------------------------------------------------------------


def test_rotation_promotes_the_announced_key_and_retires_the_sealing_one() -> None:
    announced, sealing, recent, expired = (TicketKey.generate() for _ in range(4))
    later = NOW + 3600
    oldest_kept = int(later - LIFETIME - RELOAD_SLACK)  # a laggard may have sealed until then
    before = KeyFile(
        (
            KeyLine("next", announced, int(NOW)),
            KeyLine("seal", sealing, int(NOW)),
            KeyLine("open", recent, oldest_kept),
            KeyLine("open", expired, oldest_kept - 1),
        )
    )
    after = before.rotated(later, LIFETIME)
    roles = [(line.role, line.key, line.since) for line in after.lines]
    (fresh,) = [key for role, key, _ in roles if role == "next"]
    assert fresh not in (announced, sealing, recent, expired)
    assert roles == [
        ("next", fresh, int(later)),
        ("seal", announced, int(later)),
        ("open", sealing, int(later)),
        ("open", recent, oldest_kept),
    ]


def test_rotating_a_file_of_the_first_format(tmp_path: Path) -> None:
    path = tmp_path / "tickets.keys"
    old = TicketKey.generate()
    path.write_text(hex_of(old) + "\n")
    path.chmod(0o600)
    rotated = rotate_key_file(path, NOW, lifetime=LIFETIME)
    assert [line.role for line in rotated.lines] == ["next", "seal", "open"]
    assert rotated.lines[2].key == old
    assert read_key_file(path)[0] == rotated


def test_rotation_replaces_the_file_whole(tmp_path: Path) -> None:
    path = tmp_path / "tickets.keys"
    write_key_file(path, KeyFile.fresh(NOW))
    inode = path.stat().st_ino
    rotate_key_file(path, NOW + 3600, lifetime=LIFETIME)
    assert path.stat().st_ino != inode  # a rename, never a rewrite in place
    assert path.stat().st_mode & 0o777 == 0o600
    assert [entry.name for entry in tmp_path.iterdir()] == ["tickets.keys"]


def test_a_fleet_never_rejects_a_fresh_ticket(tmp_path: Path) -> None:
    """Machine A picks up the rotated file first; B still has the old one, then catches up."""
    central, on_a, on_b = tmp_path / "central", tmp_path / "a", tmp_path / "b"
    write_key_file(central, KeyFile.fresh(NOW))
    for copy in (on_a, on_b):
        copy.write_bytes(central.read_bytes())
        copy.chmod(0o600)
    a = FileTicketKeys(on_a, lifetime=LIFETIME, now=NOW)
    b = FileTicketKeys(on_b, lifetime=LIFETIME, now=NOW)

    rotated = rotate_key_file(central, NOW + 3600, lifetime=LIFETIME)
    write_key_file(on_a, rotated)  # distributed to A only, so far
    now = NOW + 3600 + 5
    from_a = a.seal(state_at(now))
    assert from_a[:16] == rotated.sealing.key.name  # A reloaded and seals with the new key
    assert b.open(from_a, now) == state_at(now)  # B announced it: the fresh ticket opens
    from_b = b.seal(state_at(now))
    assert a.open(from_b, now) == state_at(now)  # A still opens the retired key

    write_key_file(on_b, rotated)
    later = now + 5
    assert b.seal(state_at(later))[:16] == rotated.sealing.key.name
    assert b.open(from_a, later) == b.open(from_b, later) == state_at(now)


# --- reloading --------------------------------------------------------------------------------


def test_a_reader_looks_at_the_file_at_most_once_a_second(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "tickets.keys"
    write_key_file(path, KeyFile.fresh(NOW))
    keys = FileTicketKeys(path, lifetime=LIFETIME, now=NOW)
    looks: list[str] = []
    real_stat = os.stat

    def counting_stat(*args: object, **kwargs: object) -> os.stat_result:
        looks.append("stat")
        return real_stat(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "stat", counting_stat)
    rotated = rotate_key_file(path, NOW + 3600, lifetime=LIFETIME)
    looks.clear()
    for step in range(1000):  # a thousand handshakes within one second
        ticket = keys.seal(state_at(NOW + step / 1000))
        assert keys.open(ticket, NOW + step / 1000) is not None
    assert looks == []
    assert ticket[:16] != rotated.sealing.key.name  # not looked at yet
    assert keys.seal(state_at(NOW + 1.5))[:16] == rotated.sealing.key.name
    assert looks == ["stat"]


def test_a_bad_file_keeps_the_keys_loaded_before(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "tickets.keys"
    key_file = KeyFile.fresh(NOW)
    write_key_file(path, key_file)
    keys = FileTicketKeys(path, lifetime=LIFETIME, now=NOW)
    broken = tmp_path / "broken"
    broken.write_text("not a key\n")
    broken.chmod(0o600)
    broken.replace(path)
    with caplog.at_level(logging.WARNING, "trio_tls"):
        for second in range(2, 6):
            assert keys.seal(state_at(NOW + second))[:16] == key_file.sealing.key.name
    (record,) = caplog.records  # reported once, not every second
    assert "keeping the ticket keys loaded before" in record.getMessage()
    rotated = key_file.rotated(NOW + 10, LIFETIME)
    write_key_file(path, rotated)
    assert keys.seal(state_at(NOW + 12))[:16] == rotated.sealing.key.name


def test_a_reader_at_the_limit_waits_for_the_owner(tmp_path: Path) -> None:
    path = tmp_path / "tickets.keys"
    write_key_file(path, KeyFile.fresh(NOW))
    keys = FileTicketKeys(path, lifetime=LIFETIME, now=NOW, seal_limit=4)
    assert not keys.worn
    assert all(keys.seal(state_at(NOW)) for _ in range(2))
    assert keys.worn  # half spent: an owner would rotate now
    assert all(keys.seal(state_at(NOW)) for _ in range(2))
    assert keys.seal(state_at(NOW)) == b""
    rotated = rotate_key_file(path, NOW + 1, lifetime=LIFETIME)
    assert keys.seal(state_at(NOW + 2))[:16] == rotated.sealing.key.name
    assert not keys.worn


def test_a_reload_keeps_the_count_of_a_key_it_keeps(tmp_path: Path) -> None:
    """Guards the seal count across reloads: a file that changes without a rotation (another
    `next` key announced, say) leaves the sealing key's count as it was, so a key at its limit
    stays spent until the owner rotates it; a reload never resets the count."""
    path = tmp_path / "tickets.keys"
    key_file = KeyFile.fresh(NOW)
    write_key_file(path, key_file)
    keys = FileTicketKeys(path, lifetime=LIFETIME, now=NOW, seal_limit=2)
    assert all(keys.seal(state_at(NOW)) for _ in range(2))
    announced = KeyLine("next", TicketKey.generate(), int(NOW) + 1)
    write_key_file(path, KeyFile((announced, *key_file.lines)))
    assert keys.seal(state_at(NOW + 2)) == b""  # reloaded (it opens the announced key)...
    ticket = forge(announced.key, state_at(NOW + 2))
    assert keys.open(ticket, NOW + 2) == state_at(NOW + 2)  # ...and still spent


# --- the owner --------------------------------------------------------------------------------


async def run_owner_briefly(path: Path, keys: FileTicketKeys | None = None) -> None:
    """keep_rotating checks at once, then sleeps: half a second covers the first check."""
    with trio.move_on_after(0.5):
        await keep_rotating(path, lifetime=LIFETIME, keys=keys)


async def test_the_owner_rotates_when_the_sealing_key_is_an_hour_old(tmp_path: Path) -> None:
    path = tmp_path / "tickets.keys"
    fresh = KeyFile.fresh(time.time())
    write_key_file(path, fresh)
    await run_owner_briefly(path)
    assert read_key_file(path)[0] == fresh

    stale = KeyFile.fresh(time.time() - 3601)
    write_key_file(path, stale)
    await run_owner_briefly(path)
    rotated, _ = read_key_file(path)
    assert rotated.sealing.key == stale.lines[0].key  # the announced key took over
    assert rotated.sealing.since >= int(time.time()) - 1


async def test_the_owner_rotates_early_when_its_keys_wear_out(tmp_path: Path) -> None:
    path = tmp_path / "tickets.keys"
    fresh = KeyFile.fresh(time.time())
    write_key_file(path, fresh)
    keys = FileTicketKeys(path, lifetime=LIFETIME, seal_limit=2)
    keys.seal(state_at(time.time()))
    await run_owner_briefly(path, keys)
    assert read_key_file(path)[0].sealing.key == fresh.lines[0].key


async def wait_for(condition: Callable[[], bool]) -> None:
    """Poll: what changes is a file or a log, which nothing can signal to the test."""
    with trio.fail_after(5):
        while not condition():  # noqa: ASYNC110
            await trio.sleep(0.01)


@pytest.fixture
async def owner(
    monkeypatch: pytest.MonkeyPatch, nursery: trio.Nursery
) -> Callable[[Path, bool], None]:
    """Starts keep_rotating in the background, checking every 10 ms."""
    monkeypatch.setattr(ticketfile, "CHECK_INTERVAL", 0.01)

    def start(path: Path, make_directory: bool = False) -> None:
        nursery.start_soon(
            functools.partial(keep_rotating, path, lifetime=LIFETIME, make_directory=make_directory)
        )

    return start


async def test_the_owner_makes_a_vanished_file_again_with_the_keys_it_held(
    tmp_path: Path, owner: Callable[[Path, bool], None], caplog: pytest.LogCaptureFixture
) -> None:
    """Tickets already issued still open, and a worker starting meanwhile finds its keys."""
    path = tmp_path / "tickets.keys"
    stale = KeyFile.fresh(time.time() - 3601)
    write_key_file(path, stale)
    owner(path, False)
    await wait_for(lambda: read_key_file(path)[0] != stale)  # rotated: the owner has read it
    held, _ = read_key_file(path)
    path.unlink()
    await wait_for(path.exists)
    assert read_key_file(path)[0] == held
    assert path.stat().st_mode & 0o777 == 0o600
    assert "had vanished: made it again, with the keys it held" in caplog.text


async def test_the_owner_makes_its_private_directory_again_but_never_an_operators(
    tmp_path: Path, owner: Callable[[Path, bool], None], caplog: pytest.LogCaptureFixture
) -> None:
    ours, operators = tmp_path / "trio-tls-private", tmp_path / "operators"
    owner(ours / "tickets.keys", True)
    owner(operators / "tickets.keys", False)
    await wait_for((ours / "tickets.keys").exists)
    assert ours.stat().st_mode & 0o777 == 0o700
    assert "had vanished: made it again, with new keys" in caplog.text
    shutil.rmtree(ours)
    await wait_for((ours / "tickets.keys").exists)
    await wait_for(lambda: f"cannot write ticket key file {operators}" in caplog.text)
    assert not operators.exists()  # an operator's directory: theirs to restore

    shutil.rmtree(ours)
    ours.mkdir(mode=0o755)  # a directory at our name that others may enter: not ours
    await wait_for(lambda: "exists and is not a directory private to this user" in caplog.text)
    assert not (ours / "tickets.keys").exists()


# --- settings and the command line -----------------------------------------------------------


def test_the_owner_makes_the_file_and_readers_follow_it(tmp_path: Path) -> None:
    path = tmp_path / "tickets.keys"
    owner = ticket_keys(Settings(ticket_key_file=str(path)), [])
    assert isinstance(owner, FileTicketKeys)
    assert path.stat().st_mode & 0o777 == 0o600
    reader = ticket_keys(Settings(ticket_key_file=str(path), ticket_key_rotation="external"), [])
    assert isinstance(reader, FileTicketKeys)
    now = time.time()
    rotated = rotate_key_file(path, now, lifetime=LIFETIME)
    for keys in (owner, reader):
        assert keys.seal(state_at(now + 2))[:16] == rotated.sealing.key.name


def test_a_reader_never_makes_the_file(tmp_path: Path) -> None:
    path = tmp_path / "tickets.keys"
    with pytest.raises(TicketKeyFileError, match="cannot read ticket key file"):
        ticket_keys(Settings(ticket_key_file=str(path), ticket_key_rotation="external"), [])
    assert not path.exists()


def test_a_reader_warns_when_nobody_rotates(tmp_path: Path) -> None:
    path = tmp_path / "tickets.keys"
    write_key_file(path, KeyFile.fresh(time.time() - 30 * 86400))
    settings = Settings(ticket_key_file=str(path), ticket_key_rotation="external")
    notices: list[Notice] = []
    ticket_keys(settings, notices)
    (notice,) = notices
    assert notice.warning
    assert "is 720 hours old" in notice.text
    assert f"trio-tls ticket-keys rotate {path}" in notice.text


def test_ticket_keys_rotate_command(tmp_path: Path) -> None:
    path = tmp_path / "tickets.keys"

    def rotate() -> str:
        result = subprocess.run(
            command("ticket-keys", "rotate", str(path)),
            env=child_env(),
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout

    assert rotate() == f"made {path} (mode 0600)\n"
    made, _ = read_key_file(path)
    output = rotate()
    rotated, _ = read_key_file(path)
    assert rotated.sealing.key == made.lines[0].key
    assert output.startswith(f"rotated {path}: key {rotated.sealing.key.name.hex()} seals")
    assert [line.role for line in rotated.lines] == ["next", "seal", "open"]


def test_ticket_keys_rotate_command_refuses_an_open_file(tmp_path: Path) -> None:
    path = tmp_path / "tickets.keys"
    write_key_file(path, KeyFile.fresh(NOW))
    path.chmod(0o644)
    result = subprocess.run(
        command("ticket-keys", "rotate", str(path)),
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr == (
        f"trio-tls: error: cannot read ticket key file {path}: other users have access to it "
        f"(mode 0644); run: chmod 600 {path}\n"
    )


def wait_for_rotation(path: Path, timeout: float = 10) -> KeyFile:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        key_file, _ = read_key_file(path)
        if any(line.role == "next" for line in key_file.lines):
            return key_file
        time.sleep(0.05)
    raise AssertionError(f"{path} was not rotated within {timeout} s")


def stale_file_of_the_first_format(path: Path) -> TicketKey:
    key = TicketKey.generate()
    path.write_text(hex_of(key) + "\n")
    path.chmod(0o600)
    two_hours_ago = time.time() - 7200
    os.utime(path, (two_hours_ago, two_hours_ago))
    return key


def test_serve_rotates_the_key_file_it_owns(tmp_path: Path) -> None:
    path = tmp_path / "tickets.keys"
    old = stale_file_of_the_first_format(path)
    with running_server(tmp_path, "--ticket-key-file", str(path)) as server:
        rotated = wait_for_rotation(path)
        assert server.stop() == 0
    assert [(line.role, line.key == old) for line in rotated.lines] == [
        ("next", False),
        ("seal", False),
        ("open", True),
    ]
    assert path.stat().st_mode & 0o777 == 0o600
