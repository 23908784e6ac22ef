"""The stream apps' RocksDB memory caps reach the stores RocksDB actually opens."""

from pathlib import Path

import rocksdict

from movieflix_lab.config import Settings
from movieflix_lab.streams.app import state_options


def _opened_with(settings: Settings, folder: Path) -> dict[str, str]:
    """Open a RocksDB store with the apps' options; the options file RocksDB wrote for it."""
    db = rocksdict.Rdict(str(folder), options=state_options(settings).to_options())
    db[b"user"] = b"memory"
    db.close()
    written = sorted(folder.glob("OPTIONS-*"))[-1].read_text().splitlines()
    return dict(line.strip().split("=", 1) for line in written if "=" in line)


def test_write_buffers_are_capped_by_the_settings(tmp_path: Path) -> None:
    default = _opened_with(Settings(), tmp_path / "default")
    assert default["write_buffer_size"] == str(4 * 1024 * 1024)  # Quix's default: 64 MB
    assert default["max_write_buffer_number"] == "2"  # Quix's default: 3
    small = _opened_with(Settings(stream_state_write_buffer_mb=1), tmp_path / "small")
    assert small["write_buffer_size"] == str(1024 * 1024)


def test_block_cache_size_follows_the_setting() -> None:
    assert state_options(Settings()).block_cache_size == 64 * 1024 * 1024  # Quix: 1 GB
    assert state_options(Settings(stream_state_cache_mb=16)).block_cache_size == 16 * 1024**2
